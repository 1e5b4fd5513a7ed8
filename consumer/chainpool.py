"""Verifying many sessions' chains at once, across processes: a month's tombstones.

Verifying a chain costs an Ed25519 check a chunk (~70 µs on an idle core, two to three
times that on a loaded one), so a month of 400 k chunks is half a minute or more on
one core. :func:`verdicts` hands batches of sessions to a pool of worker processes and
gives back each session's verdict, in the order the batches were given; the callers
sign and write meanwhile. Workers only verify: the deletion key never leaves the
process that signs, and a worker's verdict is :func:`sshtrail.chain.verify_chain`'s,
the same as one process would reach. A worker that fails fails the caller (its
transaction rolls back): no verdict is ever made up for a session.

Workers are started fresh (``spawn``), not forked: the store group's process runs
Kafka clients' threads, which a fork would copy half-way.
"""

from __future__ import annotations

import multiprocessing
import os
import uuid
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from typing import NamedTuple

from sshtrail.chain import Status, verify_chain

#: Most worker processes, whatever the cores: verifying is all a worker does, and the
#: signing process and the database need their share.
MOST_WORKERS = 8
#: Chunks below which chains are verified in the calling process: starting a worker
#: (a fresh interpreter, ~0.3 s) costs more than verifying them.
POOL_FROM_CHUNKS = 20_000
#: Chunks a batch holds, about: a worker's task (~0.15 s of verifying).
BATCH_CHUNKS = 2_000


class Chain(NamedTuple):
    """One session's stored chunks, ``(seq, bytes)`` in seq order, and the keys trusted."""

    session_id: uuid.UUID
    stored: list[tuple[int, bytes]]
    trusted_keys: tuple[bytes, ...]


class Checked(NamedTuple):
    """What a tombstone needs of a verification: the status, and the digest of an
    authentic end when the chain has one."""

    session_id: uuid.UUID
    status: Status
    final_digest: bytes | None


def workers_for(chunks: int) -> int:
    """Processes to verify ``chunks`` chunks with: 1 (this one) for a few, else
    :func:`cores`."""
    return 1 if chunks < POOL_FROM_CHUNKS else cores()


def cores() -> int:
    """One worker a core this process may run on, at most :data:`MOST_WORKERS`."""
    return max(1, min(MOST_WORKERS, len(os.sched_getaffinity(0))))


def check(chains: Sequence[Chain]) -> list[Checked]:
    """Verify each chain in this process (a pool worker runs this on a batch)."""
    checked = []
    for chain in chains:
        verdict = verify_chain(chain.stored, chain.trusted_keys)
        checked.append(Checked(chain.session_id, verdict.status, verdict.final_digest))
    return checked


def batches(chains: Iterable[Chain], size: int = BATCH_CHUNKS) -> Iterator[list[Chain]]:
    """``chains`` in lists of about ``size`` chunks (a session is never split)."""
    batch: list[Chain] = []
    held = 0
    for chain in chains:
        batch.append(chain)
        held += len(chain.stored)
        if held >= size:
            yield batch
            batch, held = [], 0
    if batch:
        yield batch


def verdicts(chains: Iterable[Chain], workers: int) -> Iterator[list[Checked]]:
    """Each batch of ``chains``' verdicts, in order, verified by ``workers`` processes
    (in this one when 1). At most two batches a worker are read ahead, so a month is
    never all in memory; the caller works on a batch while the next are verified."""
    if workers <= 1:
        for batch in batches(chains):
            yield check(batch)
        return
    pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"))
    try:
        pending: deque[Future[list[Checked]]] = deque()
        for batch in batches(chains):
            pending.append(pool.submit(check, batch))
            if len(pending) >= 2 * workers:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
