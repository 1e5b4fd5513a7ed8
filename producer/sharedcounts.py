"""Sessions open per operator across a gateway's workers, in memory they all share.

``gateway.max_sessions`` and ``max_sessions_per_operator`` are limits of the
gateway, not of one worker: an operator must not get twice the sessions
because the kernel spread their connections over two workers. The supervisor
(``producer/workers.py``) makes one shared array of counters before it starts
the workers: a row per worker, a column per configured operator and one for
the total. Each worker writes only its own row (from its event loop, one
writer per row, so no lock), and reads the sum of the rows. A worker that
died leaves its row as it was; the supervisor zeroes the row before the
worker's successor starts, as its sessions ended with it.

Checking and adding are two steps in two processes: two workers admitting
the same operator's sessions within the same microseconds can both pass a
limit that has room for one, so a limit can be exceeded by at most
``workers - 1`` sessions. An operator not in the settings (none should get
this far) is counted by its worker only.
"""

from __future__ import annotations

import ctypes
from collections.abc import Sequence
from multiprocessing.sharedctypes import RawArray
from typing import Any


class SharedCounts:
    """Counters shared by a gateway's workers; ``row`` is this worker's."""

    def __init__(self, cells: Any, operators: Sequence[str], workers: int, row: int) -> None:
        self._cells = cells
        self._columns = {name: index for index, name in enumerate(operators)}
        self._width = len(operators) + 1  # the last column: every session
        self._workers = workers
        self._row = row

    @classmethod
    def create(cls, operators: Sequence[str], workers: int) -> Any:
        """The shared cells, made by the supervisor and handed to each worker at its start."""
        return RawArray(ctypes.c_int64, workers * (len(operators) + 1))

    def zero(self, row: int) -> None:
        """Forget what worker ``row`` counted (it died; its sessions ended with it)."""
        start = row * self._width
        for index in range(start, start + self._width):
            self._cells[index] = 0

    def total(self) -> int:
        """Sessions open in every worker."""
        return self._sum(self._width - 1)

    def of(self, operator: str) -> int | None:
        """Sessions ``operator`` has open in every worker; None if not counted here."""
        column = self._columns.get(operator)
        return None if column is None else self._sum(column)

    def add(self, operator: str, delta: int) -> None:
        """This worker opened (``delta`` 1) or closed (-1) one of ``operator``'s sessions."""
        base = self._row * self._width
        self._cells[base + self._width - 1] += delta
        column = self._columns.get(operator)
        if column is not None:
            self._cells[base + column] += delta

    def _sum(self, column: int) -> int:
        cells, width = self._cells, self._width
        return sum(cells[row * width + column] for row in range(self._workers))
