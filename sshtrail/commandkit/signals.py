"""Waiting for Ctrl-C, SIGTERM or a hang-up while child processes run.

A Python signal handler runs in the main thread between two bytecodes --
possibly in the middle of the very wait it should end. So the handler takes
no lock (a ``threading.Event`` would: a signal arriving while the main thread
is inside ``Event.wait`` deadlocked ``sshtrail up`` for good, its children
left running); it notes the signal and writes a byte to a pipe, which the
waiter watches with ``select``.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType


class StopSignal:
    """Set by SIGINT, SIGTERM or SIGHUP; ``name`` says which arrived first."""

    def __init__(self, on_stop: Callable[[str], None] | None = None) -> None:
        self._read, self._write = os.pipe()
        os.set_blocking(self._write, False)
        self._on_stop = on_stop
        self.name: str | None = None

    def _handle(self, signum: int, _frame: FrameType | None) -> None:
        first = self.name is None
        self.name = self.name or signal.Signals(signum).name
        with contextlib.suppress(OSError):  # full: the waiter has enough to wake up
            os.write(self._write, b"!")
        if first and self._on_stop is not None:
            self._on_stop(self.name)

    def wait(self, timeout: float) -> bool:
        """Whether a signal has arrived, waiting up to ``timeout`` seconds for one."""
        if self.received:
            return True
        readable, _, _ = select.select([self._read], [], [], timeout)
        return bool(readable) or self.received

    @property
    def received(self) -> bool:
        return self.name is not None

    def close(self) -> None:
        for fd in (self._read, self._write):
            with contextlib.suppress(OSError):
                os.close(fd)


@contextmanager
def stop_on_signals(on_stop: Callable[[str], None] | None = None) -> Iterator[StopSignal]:
    """Route SIGINT, SIGTERM and SIGHUP (the terminal closed) to a :class:`StopSignal`
    for the block's duration; ``on_stop`` is called with the signal's name when the first
    one arrives."""
    stop = StopSignal(on_stop)
    previous: dict[int, Callable[[int, FrameType | None], object] | int | None] = {}
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        previous[signum] = signal.signal(signum, stop._handle)
    try:
        yield stop
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
        stop.close()
