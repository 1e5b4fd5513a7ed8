"""Waiting for Ctrl-C or SIGTERM while child processes run."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType


class StopSignal:
    """Set by SIGINT or SIGTERM; ``name`` says which arrived first."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self.name: str | None = None

    def _handle(self, signum: int, _frame: FrameType | None) -> None:
        self.name = self.name or signal.Signals(signum).name
        self._event.set()

    def wait(self, timeout: float) -> bool:
        return self._event.wait(timeout)

    @property
    def received(self) -> bool:
        return self._event.is_set()


@contextmanager
def stop_on_signals() -> Iterator[StopSignal]:
    """Route SIGINT and SIGTERM to a :class:`StopSignal` for the block's duration."""
    stop = StopSignal()
    previous: dict[int, Callable[[int, FrameType | None], object] | int | None] = {}
    for signum in (signal.SIGINT, signal.SIGTERM):
        previous[signum] = signal.signal(signum, stop._handle)
    try:
        yield stop
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
