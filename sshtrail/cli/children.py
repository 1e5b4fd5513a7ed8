"""The child processes of ``sshtrail up``: started in order, stopped in reverse."""

from __future__ import annotations

import logging
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from sshtrail.errors import SshtrailError

log = logging.getLogger(__name__)


class ChildFailed(SshtrailError):
    """A part of the stack exited while it should be running."""


class Children:
    """``sshtrail`` sub-commands run as children sharing our stdout and stderr."""

    def __init__(self, config: Path | None) -> None:
        self._config = config
        self._running: list[tuple[str, subprocess.Popen[bytes]]] = []

    def start(self, name: str, *args: str, port: int | None = None, timeout: float = 30) -> None:
        """Run ``sshtrail ARGS``; with ``port``, return once it accepts connections there."""
        argv = [sys.executable, "-m", "sshtrail"]
        if self._config is not None:
            argv += ["--config", str(self._config)]
        process = subprocess.Popen([*argv, *args], stdin=subprocess.DEVNULL)
        self._running.append((name, process))
        deadline = time.monotonic() + timeout
        while port is not None and not _accepts("127.0.0.1", port):
            if process.poll() is not None:
                raise ChildFailed(
                    f"the {name} exited with status {process.returncode} "
                    "while starting (its message is above)"
                )
            if time.monotonic() > deadline:
                raise ChildFailed(f"the {name} did not listen on port {port} in {timeout:.0f}s")
            time.sleep(0.05)

    def check(self) -> None:
        """Raise :class:`ChildFailed` if a child has exited."""
        for name, process in self._running:
            if process.poll() is not None:
                raise ChildFailed(
                    f"the {name} exited unexpectedly with status "
                    f"{process.returncode}; stopping the rest"
                )

    def stop(self, timeout: float = 45) -> None:
        """SIGTERM each child, newest first, waiting for each; then SIGKILL stragglers."""
        for name, process in reversed(self._running):
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(timeout)
                except subprocess.TimeoutExpired:
                    log.warning("the %s did not stop in %d s; killing it", name, timeout)
                    process.kill()
                    process.wait()
        self._running.clear()


def _accepts(host: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex((host, port)) == 0
