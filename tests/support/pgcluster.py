"""A private PostgreSQL server on a loopback port, for tests that stop and start it."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from sshtrail.broker import free_port


def find_bin() -> Path | None:
    """The server binaries of Debian's PostgreSQL (the newest installed)."""
    versions = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"),
        key=lambda p: int(p.parent.parent.name),
        reverse=True,
    )
    return versions[0].parent if versions else None


class PrivateCluster:
    """``initdb`` into a temporary folder, then start and stop at will.

    PostgreSQL refuses to run as root, so as root it runs as the ``postgres``
    user that Debian's package creates.
    """

    def __init__(self, bindir: Path) -> None:
        self.bindir = bindir
        # Not under pytest's folder: the postgres user cannot enter root's.
        self._workdir = Path(tempfile.mkdtemp(prefix="sshtrail-pg-"))
        self.data = self._workdir / "pgdata"
        self.port = free_port()
        self._as: list[str] = []
        if os.geteuid() == 0:
            self._as = ["runuser", "-u", "postgres", "--"]
            shutil.chown(self._workdir, "postgres")
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8")
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.write(
                f"listen_addresses = '127.0.0.1'\nport = {self.port}\n"
                f"unix_socket_directories = '{self.data}'\nfsync = off\n"
            )

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def start(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.data / "log"), "-w", "start")

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")

    def _run(self, tool: str, *args: str) -> None:
        subprocess.run(
            [*self._as, str(self.bindir / tool), *args],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            timeout=120,
        )

    def remove(self) -> None:
        if (self.data / "postmaster.pid").exists():
            self.stop()
        shutil.rmtree(self._workdir, ignore_errors=True)
