"""The store's evidence of refused chunks: what no trusted gateway signed, kept as received.

A chunk :mod:`sshtrail.provenance` refuses is never written as its session's
(no ``sessions`` row is made or changed for it): it goes to
``refused_chunks`` with the partition and offset it came from and why, once
(a re-delivery changes nothing), so the real chunk with that seq is taken
when it arrives and ``verify``/``show`` can list the refusals.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import Table
from sqlalchemy.engine import Connection

from consumer.messages import Refused
from sshtrail.tables import REFUSED_CHUNKS

#: The reason column's length.
_REASON = 256


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
