"""The index group's backlog (``search_backlog``): chunks kept to rebuild a terminal, or waiting.

For every open session the backlog holds its first chunk and its last
indexed ones, about :data:`KEEP_BYTES` of them, so that a member taking the
session over (after a restart, a rebalance, or a failed transaction) can
replay them into a fresh terminal; and it holds the chunks that arrived but
were not indexed yet (a batch's time ran out), committed, not lost, to be
indexed between batches. A session's rows go when it ends or is quarantined.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from sqlalchemy import Engine, Table, and_, delete, func, select
from sqlalchemy.dialects.postgresql import Insert as PgInsert
from sqlalchemy.dialects.sqlite import Insert as SqliteInsert
from sqlalchemy.engine import Connection

from sshtrail.search import BACKLOG, SESSIONS
from sshtrail.wire import Chunk, decode_chunk

#: The output of a session kept in the backlog to rebuild its terminal from.
KEEP_BYTES = 256 << 10

#: The dialect's INSERT, which has ``on_conflict_do_nothing``.
Insert = Callable[[Table], PgInsert | SqliteInsert]


class Backlog:
    """One member's use of the backlog, and which sessions it knows have chunks waiting."""

    def __init__(self, insert: Insert) -> None:
        self._insert = insert
        #: Sessions with chunks in the backlog not indexed yet; None: not looked yet.
        self._behind: set[uuid.UUID] | None = None

    # -- sessions behind ---------------------------------------------------------------

    def behind(self, engine: Engine) -> set[uuid.UUID]:
        """The sessions with chunks waiting, looked up in the index the first time."""
        if self._behind is None:
            with engine.connect() as conn:
                self._behind = set(_sessions_behind(conn))
        return self._behind

    def is_behind(self, session_id: uuid.UUID) -> bool:
        return self._behind is not None and session_id in self._behind

    def any_behind(self) -> bool:
        return bool(self._behind)

    def note(self, session_id: uuid.UUID, behind: bool) -> None:
        """Whether the session has chunks waiting, as its transaction left it."""
        if self._behind is None:
            self._behind = set()
        if behind:
            self._behind.add(session_id)
        else:
            self._behind.discard(session_id)

    def unknown(self) -> None:
        """Forget which sessions are behind (a transaction failed): looked up again."""
        self._behind = None

    # -- the rows ----------------------------------------------------------------------

    def waiting(
        self, conn: Connection, session_id: uuid.UUID, next_seq: int, new: list[Chunk]
    ) -> list[Chunk]:
        """The session's chunks not indexed yet: those waiting in the backlog from
        ``next_seq`` on, and ``new`` (which win a seq both hold), in seq order."""
        rows = conn.execute(
            select(BACKLOG.c.data)
            .where(BACKLOG.c.session_id == session_id, BACKLOG.c.seq >= next_seq)
            .order_by(BACKLOG.c.seq)
        )
        chunks = {chunk.seq: chunk for chunk in map(decode_chunk, (d for (d,) in rows))}
        chunks.update({chunk.seq: chunk for chunk in new})
        return [chunks[seq] for seq in sorted(chunks)]

    def indexed(self, conn: Connection, session_id: uuid.UUID, next_seq: int) -> Iterator[Chunk]:
        """The session's kept chunks below ``next_seq`` (already indexed), in seq order."""
        rows = conn.execute(
            select(BACKLOG.c.data)
            .where(BACKLOG.c.session_id == session_id, BACKLOG.c.seq < next_seq)
            .order_by(BACKLOG.c.seq)
        )
        for (data,) in rows:
            yield decode_chunk(data)

    def keep(self, conn: Connection, rows: list[dict[str, Any]]) -> None:
        """Insert ``rows`` (session_id, seq, data); those already kept stay as they are."""
        conn.execute(
            self._insert(BACKLOG).on_conflict_do_nothing(index_elements=["session_id", "seq"]),
            rows,
        )

    def trim(self, conn: Connection, session_id: uuid.UUID, next_seq: int) -> None:
        """Keep the session's first chunk and its last :data:`KEEP_BYTES` of indexed ones."""
        sizes = conn.execute(
            select(BACKLOG.c.seq, func.length(BACKLOG.c.data))
            .where(
                BACKLOG.c.session_id == session_id,
                BACKLOG.c.seq > 0,
                BACKLOG.c.seq < next_seq,
            )
            .order_by(BACKLOG.c.seq.desc())
        ).all()
        total, cutoff = 0, None
        for seq, size in sizes:
            total += size or 0
            if total > KEEP_BYTES:
                cutoff = seq
                break
        if cutoff is not None:
            conn.execute(
                delete(BACKLOG).where(
                    and_(
                        BACKLOG.c.session_id == session_id,
                        BACKLOG.c.seq > 0,
                        BACKLOG.c.seq <= cutoff,
                    )
                )
            )

    def drop(self, conn: Connection, session_id: uuid.UUID) -> None:
        """Delete all the session's rows (it ended, or is quarantined)."""
        conn.execute(delete(BACKLOG).where(BACKLOG.c.session_id == session_id))
        self.note(session_id, False)


def to_keep(arrived: list[Chunk], next_seq: int) -> list[Chunk]:
    """Of the chunks that arrived, those the backlog must hold: every one not indexed
    yet, and of the indexed ones what :meth:`Backlog.trim` would keep -- the first
    chunk and the last :data:`KEEP_BYTES`. A flood indexed as it arrives is then
    never written to the backlog only to be deleted again."""
    waiting = [c for c in arrived if c.seq >= next_seq]
    indexed = [c for c in arrived if c.seq < next_seq]
    kept, total = [], 0
    for chunk in reversed(indexed):
        total += len(chunk.raw)
        if total > KEEP_BYTES:
            break
        kept.append(chunk)
    kept.reverse()
    holds_first = bool(kept) and kept[0].seq == 0
    first = indexed[:1] if indexed and indexed[0].seq == 0 and not holds_first else []
    return first + kept + waiting


def _sessions_behind(conn: Connection) -> Iterable[uuid.UUID]:
    """Sessions with chunks in the backlog that are not indexed yet."""
    query = (
        select(BACKLOG.c.session_id)
        .join(SESSIONS, SESSIONS.c.session_id == BACKLOG.c.session_id)
        .where(BACKLOG.c.seq >= SESSIONS.c.next_seq, SESSIONS.c.ended.is_(False))
        .distinct()
    )
    return conn.execute(query).scalars()
