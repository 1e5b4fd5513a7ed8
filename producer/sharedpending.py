"""Connections waiting to log in, per client address and in all, across a gateway's workers.

``gateway.max_pending_logins`` and ``max_pending_logins_per_address`` bound
the connections a gateway holds before they log in (OpenSSH's MaxStartups):
one address must not hold N times its share because the kernel spread its
connections over N workers. As in ``producer/sharedcounts.py``, the
supervisor makes the cells before the workers start: a row per worker, each
written only by its worker's event loop (one writer, no lock) and read
summed. Addresses are not known in advance, so a row has :data:`BUCKETS`
cells an address is hashed into (with the key of this gateway run that
``producer/sharedfailures.py`` uses), and one for every connection.

Two addresses in one bucket add their connections: an address may be
refused before its own limit (with ``p`` addresses waiting at once, about
``p / BUCKETS`` share its bucket), never after it. A dead worker's row is
zeroed before its successor starts: its connections died with it.
"""

from __future__ import annotations

import ctypes
from multiprocessing.sharedctypes import RawArray
from typing import Any

from producer.sharedfailures import bucket_of

#: Cells for addresses in each worker's row.
BUCKETS = 4096
_WIDTH = BUCKETS + 1  # the last: every connection of the worker


def new_cells(workers: int) -> Any:
    """The shared cells, made by the supervisor and handed to each worker at its start."""
    return RawArray(ctypes.c_int64, workers * _WIDTH)


class SharedPending:
    """Connections waiting to log in, in every worker; ``row`` is this worker's."""

    def __init__(self, cells: Any, salt: bytes, workers: int, row: int) -> None:
        self._cells = cells
        self._salt = salt
        self._workers = workers
        self._row = row

    @classmethod
    def private(cls, salt: bytes) -> SharedPending:
        """One process's own cells (``gateway.workers = 1``)."""
        return cls((ctypes.c_int64 * _WIDTH)(), salt, 1, 0)

    def zero(self, row: int) -> None:
        """Forget worker ``row``'s connections (it died, and they with it)."""
        for index in range(row * _WIDTH, (row + 1) * _WIDTH):
            self._cells[index] = 0

    def add(self, address: str, delta: int) -> None:
        """This worker holds one more (``delta`` 1) or one fewer (-1) connection from
        ``address`` waiting to log in."""
        base = self._row * _WIDTH
        self._cells[base + self._bucket(address)] += delta
        self._cells[base + BUCKETS] += delta

    def of(self, address: str) -> int:
        """Connections from ``address`` (and any sharing its bucket) in every worker."""
        return self._sum(self._bucket(address))

    def total(self) -> int:
        """Connections waiting to log in, in every worker."""
        return self._sum(BUCKETS)

    def _sum(self, column: int) -> int:
        cells = self._cells
        return sum(cells[row * _WIDTH + column] for row in range(self._workers))

    def _bucket(self, address: str) -> int:
        return bucket_of(address, self._salt, BUCKETS)
