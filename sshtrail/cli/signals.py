"""Waiting for Ctrl-C, SIGTERM or a hang-up while child processes run."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType


class StopSignal:
    """Set by SIGINT, SIGTERM or SIGHUP; ``name`` says which arrived first."""

    def __init__(self, on_stop: Callable[[str], None] | None = None) -> None:
        self._event = threading.Event()
        self._on_stop = on_stop
        self.name: str | None = None

    def _handle(self, signum: int, _frame: FrameType | None) -> None:
        first = self.name is None
        self.name = self.name or signal.Signals(signum).name
        self._event.set()
        if first and self._on_stop is not None:
            self._on_stop(self.name)

    def wait(self, timeout: float) -> bool:
        return self._event.wait(timeout)

    @property
    def received(self) -> bool:
        return self._event.is_set()


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
