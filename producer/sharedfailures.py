"""Failed logins per address and per operator name, counted in memory every worker shares.

The limits on failed logins (``gateway.auth_attempts_per_minute`` per
address, ``auth_failures_per_operator`` per name) are limits of the gateway:
a guesser whose connections the kernel spreads over N workers must not get N
times the guesses. Addresses and names are not known in advance, so the
supervisor (``producer/workers.py``) makes, before any worker starts, a fixed
table of :data:`BUCKETS` hashed buckets per worker; a key (``a`` + address,
``o`` + name) is hashed with a key made per gateway start (:func:`new_salt`),
so nobody can choose names that fall in another's bucket on purpose.

Each bucket is a ring of :data:`SLOTS` time slots of :data:`SLOT_S` seconds;
one 64-bit cell per slot holds the slot's number and its count together, so a
slot is rewritten in one store and a reader never sees a number with another
slot's count. Each worker writes only its own table (from its event loop: one
writer, no lock) and a count is the sum over every worker's table of the
slots young enough. As with ``producer/sharedcounts.py``, nothing is lost by
a worker's death: its table stays as it was, and its successor (same index)
goes on writing it.

What this costs, and in which direction (a limit may refuse early, never
late):

* two keys in one bucket add their failures: with ``k`` keys failing within
  a minute, a key shares its bucket with about ``k / BUCKETS`` others and may
  be refused before its own limit (over-counting, never under-counting);
* a failure counts for at least :data:`WINDOW_S` and at most
  ``WINDOW_S + SLOT_S`` seconds (the slot it fell in is kept whole);
* checking and adding are two steps: failures evaluated at the same moment
  on two workers are all evaluated, as a single process evaluates password
  checks running at once on its hashing threads.

A table is ``BUCKETS * SLOTS`` 64-bit cells, 832 KiB per worker, of which
only the buckets of keys that failed are ever touched. A single process
(``gateway.workers = 1``) uses the same table in its own memory, so one
worker and several count alike.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
from multiprocessing.sharedctypes import RawArray
from typing import Any

#: How long a failure counts against its address or operator name (at least).
WINDOW_S = 60.0
#: The width of one time slot; a failure counts up to this much longer than the window.
SLOT_S = 5.0
#: Slots a count reads back from the current one: they cover the whole window.
_BACK = int(WINDOW_S // SLOT_S)
#: Slots in each bucket's ring: the ones read, and the current one.
SLOTS = _BACK + 1
#: Buckets in each worker's table (one for every address and name, hashed).
BUCKETS = 8192
#: The count takes the low bits of a cell; the slot's number the rest.
_COUNT_BITS = 24
_COUNT_MAX = (1 << _COUNT_BITS) - 1


def new_salt() -> bytes:
    """The hashing key of one gateway run, made once and given to every worker."""
    return os.urandom(16)


def bucket_of(key: str, salt: bytes, buckets: int) -> int:
    """The bucket of ``key`` among ``buckets``, hashed with this gateway run's ``salt``
    (every worker, and every shared table of one run, finds a key in the same one)."""
    digest = hashlib.blake2b(key.encode(), digest_size=8, key=salt).digest()
    return int.from_bytes(digest, "little") % buckets


def new_table(workers: int) -> Any:
    """The cells of ``workers`` tables: shared memory, made before the workers start."""
    return RawArray(ctypes.c_int64, workers * BUCKETS * SLOTS)


class SharedFailures:
    """Failures per key in the tables of every worker; ``row`` is this worker's."""

    def __init__(self, cells: Any, salt: bytes, workers: int, row: int) -> None:
        self._cells = cells
        self._salt = salt
        self._workers = workers
        self._row = row

    @classmethod
    def private(cls) -> SharedFailures:
        """One process's own table (``gateway.workers = 1``)."""
        return cls((ctypes.c_int64 * (BUCKETS * SLOTS))(), new_salt(), 1, 0)

    def add(self, key: str, now: float) -> None:
        """A failure of ``key`` at ``now`` (``time.monotonic``: one clock for every
        process of the machine)."""
        slot = int(now // SLOT_S)
        index = self._row * BUCKETS * SLOTS + self._bucket(key) * SLOTS + slot % SLOTS
        cell = self._cells[index]
        if cell >> _COUNT_BITS == slot:
            if cell & _COUNT_MAX < _COUNT_MAX:
                self._cells[index] = cell + 1
        else:  # the slot held a time long past (SLOTS ago or more): start it again
            self._cells[index] = slot << _COUNT_BITS | 1

    def count(self, key: str, now: float) -> int:
        """Failures of ``key`` (and of any key sharing its bucket) in every worker
        within the last :data:`WINDOW_S` seconds of ``now``, or a little longer."""
        oldest = int(now // SLOT_S) - _BACK
        bucket = self._bucket(key) * SLOTS
        cells, total = self._cells, 0
        for row in range(self._workers):
            start = row * BUCKETS * SLOTS + bucket
            for cell in cells[start : start + SLOTS]:
                # A slot written by a worker whose clock read came a moment later
                # than ours is younger, not older: counted.
                if cell >> _COUNT_BITS >= oldest:
                    total += cell & _COUNT_MAX
        return total

    def _bucket(self, key: str) -> int:
        return bucket_of(key, self._salt, BUCKETS)
