"""The embedded development broker: a Kafka-protocol server from a PyPI wheel.

Production runs Apache Kafka (``compose/``). Where neither Docker nor Kafka's
distribution can be installed, ``sshtrail broker`` and ``sshtrail up`` start
the Kafka service of the ``noida-db`` wheel instead; docs/decisions.md says
why that one. Everything specific to it lives in this module, so another
broker can replace it by replacing this file.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from importlib.resources import files
from pathlib import Path
from types import TracebackType
from typing import IO, Final, Self

from sshtrail.errors import BrokerError
from sshtrail.parentdeath import stop_with_parent

_BINARY: Final = "noida-db"
#: Lines the binary prints that say nothing to our users.
_NOISE: Final = ("weak version `GLIBC_",)


def broker_binary() -> Path:
    """Path of the broker executable shipped in the ``noida-db`` wheel."""
    try:
        path = Path(str(files("noida_db").joinpath(_BINARY)))
    except ModuleNotFoundError:
        raise BrokerError(
            "the embedded broker needs the noida-db package: pip install noida-db"
        ) from None
    if not path.is_file():
        raise BrokerError(f"the noida-db package has no broker binary at {path}")
    if not os.access(path, os.X_OK):
        path.chmod(0o755)
    return path


class EmbeddedBroker:
    """One broker process listening on ``host:port``, data kept in ``data_dir``.

    Use as a context manager, or call :meth:`start` and :meth:`stop`. The
    broker's own output goes to ``log`` (a file) so it never mixes with ours.
    """

    def __init__(self, host: str, port: int, data_dir: Path, log: IO[bytes] | None = None):
        self.host, self.port, self.data_dir = host, port, data_dir
        self._log = log
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap_servers(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        """The broker's process id while it runs (for benchmarks' CPU accounting)."""
        return self._process.pid if self._process is not None else None

    def start(self, timeout: float = 30.0) -> None:
        """Start the broker and return once it accepts connections.

        Raises :class:`BrokerError` if the port is taken or it does not come up.
        """
        if _port_open(self.host, self.port):
            raise BrokerError(f"{self.bootstrap_servers} is already in use; is a broker running?")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        command = [
            str(broker_binary()),
            "start",
            "--only",
            "kafka",
            "--host",
            self.host,
            "--kafka-port",
            str(self.port),
            "--data-dir",
            str(self.data_dir),
        ]
        self._process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=self._log or subprocess.DEVNULL,
            stderr=subprocess.STDOUT if self._log else subprocess.DEVNULL,
            start_new_session=True,  # our Ctrl-C is ours to relay, not the terminal's
            # Not left running, holding its port and data, if its owner is killed.
            preexec_fn=stop_with_parent,  # noqa: PLW1509
        )
        deadline = time.monotonic() + timeout
        while not _port_open(self.host, self.port):
            if self._process.poll() is not None:
                raise BrokerError(
                    f"broker exited with status {self._process.returncode} while starting"
                    f"{self._log_hint()}"
                )
            if time.monotonic() > deadline:
                self.kill()
                raise BrokerError(
                    f"broker did not listen on {self.bootstrap_servers} "
                    f"within {timeout:.0f}s{self._log_hint()}"
                )
            time.sleep(0.05)

    def stop(self, timeout: float = 10.0) -> int | None:
        """Stop gracefully (SIGTERM), then forcibly; returns the exit status."""
        process = self._process
        if process is None:
            return None
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self._process = None
        return process.returncode

    def kill(self) -> None:
        """Stop at once (SIGKILL), as a crash would: for failure tests."""
        if self._process is not None:
            with contextlib.suppress(ProcessLookupError):
                self._process.kill()
            self._process.wait()
            self._process = None

    def poll(self) -> int | None:
        """The exit status if the broker has exited (or was never started), else None."""
        if self._process is None:
            return -1
        return self._process.poll()

    def _log_hint(self) -> str:
        name = getattr(self._log, "name", None)
        if not isinstance(name, str):
            return ""
        with contextlib.suppress(OSError):
            lines = [
                line
                for line in Path(name).read_text(errors="replace").splitlines()
                if line.strip() and not any(noise in line for noise in _NOISE)
            ]
            if lines:
                return "; its last words: " + " | ".join(lines[-3:])
        return f"; see {name}"

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


def _port_open(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
        sock.settimeout(0.2)
        return sock.connect_ex((host, port)) == 0


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on right now (for tests and ``up --demo``)."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port
