"""Running the real ``sshtrail`` command in a child process, reading its output."""

from __future__ import annotations

import os
import queue
import resource
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import ClassVar


def sshtrail(
    config: Path, *argv: str, check: bool = True, timeout: float = 60, input: bytes | None = None
) -> subprocess.CompletedProcess[bytes]:
    """Run ``sshtrail --config CONFIG ARGV...`` to the end; with ``check``, exit 0 is asserted."""
    done = subprocess.run(
        [sys.executable, "-m", "sshtrail", "--config", str(config), *argv],
        capture_output=True,
        timeout=timeout,
        check=False,
        input=input,
    )
    if check:
        assert done.returncode == 0, done.stderr.decode(errors="replace")
    return done


class Running:
    """A ``sshtrail`` child process whose stdout is read line by line."""

    #: Every one started; the conftest kills those a failed test left running.
    started: ClassVar[list[Running]] = []

    def __init__(
        self,
        *args: str,
        cwd: Path,
        env: dict[str, str] | None = None,
        memory_limit: int | None = None,
    ) -> None:
        self.lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "sshtrail", *args],
            cwd=cwd,
            env={**os.environ, **(env or {})},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            # A bound on the child's address space: a regression that tries to exhaust
            # memory fails the test instead of the machine.
            preexec_fn=(lambda: _limit_memory(memory_limit)) if memory_limit else None,  # noqa: PLW1509
        )
        Running.started.append(self)
        self._stderr: list[str] = []
        threading.Thread(target=self._pump, daemon=True).start()
        self._stderr_pump = threading.Thread(target=self._pump_stderr, daemon=True)
        self._stderr_pump.start()

    def _pump(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self._queue.put(line)
        self._queue.put(None)

    def _pump_stderr(self) -> None:
        assert self.process.stderr is not None
        self._stderr.extend(self.process.stderr)

    def expect(self, fragment: str, timeout: float = 60.0) -> str:
        """Wait for a stdout line containing ``fragment``; return that line."""
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                line = self._queue.get(timeout=left)
            except queue.Empty:
                break
            if line is None:
                break
            self.lines.append(line)
            if fragment in line:
                return line
        raise AssertionError(f"no {fragment!r} in output: {self.lines!r}, stderr: {self.stderr!r}")

    def keep(self) -> Running:
        """Owned by a longer-lived fixture: not killed when the current test ends."""
        Running.started.remove(self)
        return self

    @property
    def stderr(self) -> str:
        return "".join(self._stderr)

    def wait(self, timeout: float = 30.0) -> tuple[int, str, str]:
        """Wait for the exit; returns (status, stdout not yet read, stderr)."""
        status = self.process.wait(timeout)
        rest: list[str] = []
        while (line := self._queue.get(timeout=timeout)) is not None:
            rest.append(line)
        self._queue.put(None)
        self._stderr_pump.join(timeout)
        return status, "".join(rest), self.stderr

    def stop(self, signum: int = signal.SIGINT, timeout: float = 30.0) -> tuple[int, str, str]:
        """Send ``signum`` and wait for the exit."""
        self.process.send_signal(signum)
        return self.wait(timeout)


def _limit_memory(limit: int) -> None:
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
