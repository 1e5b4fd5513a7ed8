"""The store's evidence of refused chunks: what no trusted gateway signed, kept as received.

A chunk :mod:`sshtrail.provenance` refuses is never written as its session's
(no ``sessions`` row is made or changed for it): it goes to
``refused_chunks`` with the partition and offset it came from and why, once
(a re-delivery changes nothing), so the real chunk with that seq is taken
when it arrives and ``verify``/``show`` can list the refusals.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import Table, func, select
from sqlalchemy.engine import Connection

from consumer.messages import Refused
from sshtrail.tables import REFUSED_CHUNKS

log = logging.getLogger(__name__)

#: The reason column's length.
_REASON = 256
#: What a row costs beside its bytes (its other columns and the indexes), roughly.
ROW_COST = 128
#: How often the kept total is read again from the table (other members add to it).
RECOUNT_S = 60.0


class EvidenceBudget:
    """How much of the refused chunks the store keeps: up to ``max_bytes`` in all (rows
    and bytes, as :data:`ROW_COST` plus the chunk), so a client producing forgeries
    without end cannot fill the database. What is over is counted, not kept; the log
    says so once a minute. The total is read from the table at first and every
    :data:`RECOUNT_S`, added to in between: with several members the limit can be
    passed by what they keep in one such interval."""

    def __init__(self, max_bytes: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.max_bytes = max_bytes
        self._clock = clock
        self._kept: int | None = None
        self._counted_at = 0.0
        self._said_at: float | None = None
        #: Refused chunks not kept since the start: the budget was spent.
        self.dropped = 0

    def admit(self, conn: Connection, refused: Sequence[Refused]) -> list[Refused]:
        """The ``refused`` chunks that fit; the others are counted in :attr:`dropped`."""
        now = self._clock()
        if self._kept is None or now - self._counted_at >= RECOUNT_S:
            self._kept = kept_bytes(conn)
            self._counted_at = now
        fitting: list[Refused] = []
        for item in refused:
            cost = ROW_COST + len(item.received.chunk.raw)
            if self._kept + cost > self.max_bytes:
                continue
            self._kept += cost
            fitting.append(item)
        over = len(refused) - len(fitting)
        if over:
            self.dropped += over
            if self._said_at is None or now - self._said_at >= RECOUNT_S:
                self._said_at = now
                log.error(
                    "refused chunks: the evidence kept reached consumer.refused_chunks_max_mib "
                    "(%d MiB); %d refused chunks since the start were counted, not kept "
                    "(they stay on the sessions topic while its retention lasts)",
                    self.max_bytes >> 20,
                    self.dropped,
                )
        return fitting


def kept_bytes(conn: Connection) -> int:
    """What the kept refused chunks cost now, as :class:`EvidenceBudget` counts it."""
    rows, data = conn.execute(
        select(func.count(), func.coalesce(func.sum(func.length(REFUSED_CHUNKS.c.data)), 0))
    ).one()
    return int(rows) * ROW_COST + int(data)


def keep_refused(
    conn: Connection, insert: Callable[[Table], Any], refused: Sequence[Refused]
) -> int:
    """Insert the ``refused`` chunks not kept yet; how many were new."""
    if not refused:
        return 0
    rows = [
        {
            "partition": item.received.partition,
            "offset": item.received.offset,
            "session_id": item.received.chunk.session_id,
            "seq": item.received.chunk.seq,
            "reason": item.reason[:_REASON],
            "data": item.received.chunk.raw,
            "received_at": item.received.published_at,
        }
        for item in refused
    ]
    statement = (
        insert(REFUSED_CHUNKS)
        .on_conflict_do_nothing(index_elements=["partition", "offset"])
        .returning(REFUSED_CHUNKS.c.offset)
    )
    return len(conn.execute(statement, rows).all())
