"""A real OpenSSH sshd on a loopback port, and the real ssh client pointed at it."""

from __future__ import annotations

import getpass
import os
import shutil
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from sshtrail.broker import free_port

SSHD_CANDIDATES = ("/usr/sbin/sshd", "/usr/local/sbin/sshd")


def find_sshd() -> str | None:
    for candidate in SSHD_CANDIDATES:
        if os.access(candidate, os.X_OK):
            return candidate
    return shutil.which("sshd")


def keygen(path: Path, comment: str) -> Path:
    """Generate an ed25519 key pair at ``path`` (and ``path.pub``)."""
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)],
        check=True,
    )
    return path


def ensure_privsep_dir() -> None:
    """sshd started as root wants its privilege separation directory."""
    if os.geteuid() == 0:
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)


@dataclass
class SshdTarget:
    """An sshd process the tests own. ``user`` is whoever runs the tests."""

    binary: str
    workdir: Path
    host: str = "127.0.0.1"
    port: int = 0
    user: str = ""
    process: subprocess.Popen[bytes] | None = None

    @property
    def host_key(self) -> Path:
        return self.workdir / "host_ed25519"

    @property
    def client_key(self) -> Path:
        return self.workdir / "client_ed25519"

    @property
    def known_hosts(self) -> Path:
        return self.workdir / "known_hosts"

    @property
    def log(self) -> Path:
        return self.workdir / "sshd.log"

    def start(self, timeout: float = 10.0) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = self.port or free_port(self.host)
        self.user = self.user or getpass.getuser()
        keygen(self.host_key, "sshtrail-test-host")
        keygen(self.client_key, "sshtrail-test-client")
        (self.workdir / "authorized_keys").write_bytes(
            self.client_key.with_suffix(".pub").read_bytes()
        )
        host_pub = self.host_key.with_suffix(".pub").read_text().split()
        self.known_hosts.write_text(f"[{self.host}]:{self.port} {host_pub[0]} {host_pub[1]}\n")
        config = self.workdir / "sshd_config"
        config.write_text(
            "\n".join(
                [
                    f"Port {self.port}",
                    f"ListenAddress {self.host}",
                    f"HostKey {self.host_key}",
                    f"PidFile {self.workdir / 'sshd.pid'}",
                    f"AuthorizedKeysFile {self.workdir / 'authorized_keys'}",
                    "PubkeyAuthentication yes",
                    "PasswordAuthentication no",
                    "KbdInteractiveAuthentication no",
                    "PermitRootLogin prohibit-password",
                    "StrictModes no",  # the test folder's modes are not sshd's business
                    "UsePAM no",
                    "PrintMotd no",
                    "PrintLastLog no",
                    "AcceptEnv LANG LC_* SSHTRAIL_TEST_*",
                    "Subsystem sftp internal-sftp",
                    "LogLevel VERBOSE",
                    "MaxStartups 1000",  # load tests open many connections at once
                    "MaxSessions 100",
                    "",
                ]
            )
        )
        ensure_privsep_dir()
        log = self.log.open("ab")
        self.process = subprocess.Popen(
            [self.binary, "-D", "-e", "-f", str(config)], stdout=log, stderr=log
        )
        log.close()
        deadline = time.monotonic() + timeout
        while True:
            probe = subprocess.run(
                ["ssh-keyscan", "-T", "1", "-p", str(self.port), self.host],
                capture_output=True,
                check=False,
            )
            if probe.stdout.strip():
                return
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"sshd did not start: {self.log.read_text(errors='replace')}")
            time.sleep(0.1)

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            self.process = None

    def ssh_command(self, *remote: str, options: Sequence[str] = ()) -> list[str]:
        """The argv of a real OpenSSH client connecting straight to this sshd."""
        return ssh_argv(
            f"{self.user}@{self.host}",
            self.port,
            self.client_key,
            self.known_hosts,
            *remote,
            options=options,
        )


def ssh_argv(
    destination: str,
    port: int,
    key: Path,
    known_hosts: Path,
    *remote: str,
    options: Sequence[str] = (),
    tty: bool = False,
) -> list[str]:
    """The real OpenSSH client, isolated from the user's config, agent and known hosts."""
    return [
        "ssh",
        "-tt" if tty else "-T",
        *isolated(key, known_hosts),
        "-p",
        str(port),
        *options,
        destination,
        *remote,
    ]


def isolated(key: Path, known_hosts: Path) -> list[str]:
    """Options that keep an OpenSSH client (ssh, sftp, scp) to this key and these known
    hosts: none of the user's config, agent, keys or host keys."""
    return [
        "-F",
        "none",
        "-i",
        str(key),
        "-o",
        "IdentitiesOnly=yes",
        "-o",
        "BatchMode=yes",
        "-o",
        f"UserKnownHostsFile={known_hosts}",
        "-o",
        "StrictHostKeyChecking=yes",
        "-o",
        "LogLevel=ERROR",
    ]
