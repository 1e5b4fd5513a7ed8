"""A received chunk's row in ``chunks``: what the store writes of it, on both write paths.

SQLite takes the rows as dicts through SQLAlchemy's INSERT (``consumer/store.py``);
PostgreSQL takes them as tuples by COPY (``consumer/pgcopy.py``). Both come
from :func:`chunk_values`, so the two cannot drift apart.
"""

from __future__ import annotations

from typing import Any

from consumer.messages import Received

#: The columns of ``chunks`` a stored chunk fills, in the order of :func:`chunk_values`.
CHUNK_COLUMNS = (
    "session_id",
    "seq",
    "t_first",
    "t_last",
    "partition",
    "offset",
    "data",
    "received_at",
)


def chunk_values(received: Received) -> tuple[Any, ...]:
    """The chunk's values for :data:`CHUNK_COLUMNS`, in that order."""
    chunk = received.chunk
    return (
        chunk.session_id,
        chunk.seq,
        chunk.events[0].t,
        chunk.events[-1].t,
        received.partition,
        received.offset,
        chunk.raw,
        received.published_at,
    )


def chunk_row(received: Received) -> dict[str, Any]:
    """The chunk's row, by column name."""
    return dict(zip(CHUNK_COLUMNS, chunk_values(received), strict=True))
