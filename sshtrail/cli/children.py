"""The child processes of ``sshtrail up``: started in order, restarted if they crash,
stopped in reverse.

Each child runs in a session of its own, so a Ctrl-C in the terminal
reaches ``up`` alone, which then stops the children one by one -- the
gateway first, so that the sessions it closes are recorded, published and
stored before the consumer groups leave. A child that exits while it
should be running is started again after a back-off that doubles up to a
minute (and is reset once it has run for a while); ``up`` says so. Their
output goes to ``<state_dir>/logs/<name>.log``, or to ``up``'s own output
with ``--verbose``.
"""

from __future__ import annotations

import logging
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from sshtrail.errors import SshtrailError
from sshtrail.parentdeath import stop_with_parent

log = logging.getLogger(__name__)

#: Back-off before restarting a crashed child: doubles from the first, up to the last.
BACKOFF_S = (1.0, 60.0)
#: A child that ran this long before crashing gets the shortest back-off again.
STEADY_S = 60.0


class ChildFailed(SshtrailError):
    """A part of the stack exited while it should be running."""


@dataclass
class _Child:
    name: str
    args: tuple[str, ...]
    port: int | None
    restart: bool
    process: subprocess.Popen[bytes]
    started: float = field(default_factory=time.monotonic)
    crashes: int = 0
    restart_at: float | None = None


class Children:
    """``sshtrail`` sub-commands run as children, each in a session of its own."""

    def __init__(
        self, config: Path | None, logs: Path | None, say: Callable[[str, str], None]
    ) -> None:
        self._config = config
        self._logs = logs
        self._say = say
        self._running: list[_Child] = []

    def start(
        self,
        name: str,
        *args: str,
        port: int | None = None,
        restart: bool = False,
        timeout: float = 30,
    ) -> None:
        """Run ``sshtrail ARGS``; with ``port``, return once it accepts connections there.
        With ``restart``, a crash later on starts it again (see :meth:`check`)."""
        child = _Child(name, args, port, restart, self._spawn(name, args))
        self._running.append(child)
        self._wait_listening(child, timeout)

    def _spawn(self, name: str, args: tuple[str, ...]) -> subprocess.Popen[bytes]:
        argv = [sys.executable, "-m", "sshtrail"]
        if self._config is not None:
            argv += ["--config", str(self._config)]
        output: IO[bytes] | None = None
        if self._logs is not None:
            self._logs.mkdir(parents=True, exist_ok=True)
            output = (self._logs / f"{name.replace(' ', '-')}.log").open("ab")
        try:
            return subprocess.Popen(
                [*argv, *args],
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT if output is not None else None,
                start_new_session=True,  # Ctrl-C is up's to relay, in order
                # up runs no threads while it starts children: preexec_fn is safe here.
                preexec_fn=stop_with_parent,  # noqa: PLW1509
            )
        finally:
            if output is not None:
                output.close()  # the child has its own copy

    def _wait_listening(self, child: _Child, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while child.port is not None and not _accepts("127.0.0.1", child.port):
            if child.process.poll() is not None:
                raise ChildFailed(
                    f"the {child.name} exited with status {child.process.returncode} while "
                    f"starting{self._where(child.name)}"
                )
            if time.monotonic() > deadline:
                raise ChildFailed(
                    f"the {child.name} did not listen on port {child.port} in "
                    f"{timeout:.0f}s{self._where(child.name)}"
                )
            time.sleep(0.05)

    def log_of(self, name: str) -> Path | None:
        return self._logs / f"{name.replace(' ', '-')}.log" if self._logs is not None else None

    def check(self) -> None:
        """Restart crashed children whose back-off is over; :class:`ChildFailed` if one
        that must not be restarted has exited."""
        now = time.monotonic()
        for child in self._running:
            if child.restart_at is not None:
                if now >= child.restart_at:
                    child.process = self._spawn(child.name, child.args)
                    child.started, child.restart_at = now, None
                    self._say("restart", f"the {child.name} started again")
                continue
            status = child.process.poll()
            if status is None:
                continue
            if not child.restart:
                raise ChildFailed(
                    f"the {child.name} exited unexpectedly with status {status}; stopping the "
                    f"rest{self._where(child.name)}"
                )
            if now - child.started >= STEADY_S:
                child.crashes = 0
            delay = min(BACKOFF_S[0] * 2**child.crashes, BACKOFF_S[1])
            child.crashes += 1
            child.restart_at = now + delay
            self._say(
                "crashed",
                f"the {child.name} exited with status {status}; restarting it in "
                f"{delay:.0f} s{self._where(child.name)}",
            )

    def stop(self, name: str, timeout: float = 45) -> None:
        """SIGTERM one child and wait for it; SIGKILL it if it does not stop."""
        for child in list(self._running):
            if child.name == name:
                self._stop(child, timeout)
                self._running.remove(child)

    def stop_all(self, timeout: float = 45) -> None:
        """SIGTERM each child, newest first, waiting for each."""
        for child in reversed(self._running):
            self._stop(child, timeout)
        self._running.clear()

    def _stop(self, child: _Child, timeout: float) -> None:
        process = child.process
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                log.warning("the %s did not stop in %d s; killing it", child.name, timeout)
                process.kill()
                process.wait()

    def _where(self, name: str | None = None) -> str:
        if self._logs is None:
            return " (its message is above)"
        return f"; see {self.log_of(name) if name else self._logs}"


def _accepts(host: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex((host, port)) == 0
