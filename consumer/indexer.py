"""The ``sshtrail-index`` group's writer: sessions into the search index.

Each session gets an :class:`~sshtrail.indexsession.IndexedSession` that its
chunks are fed to in seq order; the documents it completes are written
insert-or-ignore on (session, kind, number), so re-delivery changes nothing.

What a member needs to take a session over -- after a restart, a rebalance,
or a failed transaction -- is in the index itself: ``search_sessions`` (how
far it got, its documents' numbers) and ``search_backlog`` (the session's
first chunk and its last chunks, about :data:`KEEP_BYTES` of them, replayed
into a fresh terminal). So the index never depends on the store group, and a
killed member loses and doubles nothing.

No one session can hold up the others (docs/architecture.md, guarantee 6):

* a batch is indexed within :data:`BATCH_BUDGET_S` of work: sessions that
  have been cheap go first, and chunks left when the time is up wait in the
  backlog -- committed, not lost -- to be indexed between batches
  (:meth:`IndexWriter.background`), session by session in turn;
* a session whose chunks cannot be indexed (the emulator fails on them) is
  quarantined: indexing it stops, with the reason, and nothing else does.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, and_, delete, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from consumer.messages import Received, Refused
from consumer.transaction import Transaction, locked_rows
from consumer.writer import Written
from sshtrail.indexsession import IndexedSession
from sshtrail.search import BACKLOG, DOCS, SESSIONS
from sshtrail.wire import Chunk, decode_chunk

log = logging.getLogger(__name__)

#: Open sessions whose terminal stays in memory; others are rebuilt on demand.
CACHE_SESSIONS = 2000
#: Work per batch; what is left waits in the backlog for :meth:`IndexWriter.background`.
BATCH_BUDGET_S = 1.0
#: Work each session of a batch gets first, before the costly ones share the rest.
SLICE_S = 0.02
#: The output of a session kept in the backlog to rebuild its terminal from.
KEEP_BYTES = 256 << 10
#: Seconds the database takes to index a character of document text, until measured:
#: the budget counts that work too, as a flood of unique text costs more there than
#: in the emulator.
INSERT_S_PER_CHAR = 1e-6


class IndexWriter:
    """Writes batches of chunks into the search index, one transaction each."""

    def __init__(self, engine: Engine, budget_s: float = BATCH_BUDGET_S) -> None:
        self._engine = engine
        self._postgres = engine.dialect.name == "postgresql"
        self._insert = postgresql.insert if self._postgres else sqlite.insert
        self._budget_s = budget_s
        self._open: OrderedDict[uuid.UUID, IndexedSession] = OrderedDict()
        #: Seconds each session cost lately: the cheap ones go first.
        self._cost: dict[uuid.UUID, float] = {}
        #: Sessions with chunks in the backlog not indexed yet; None: not looked yet.
        self._behind: set[uuid.UUID] | None = None
        #: Measured cost of storing documents, per character of their text.
        self._insert_s_per_char = INSERT_S_PER_CHAR

    # -- the Writer protocol -------------------------------------------------------

    def write(self, chunks: Sequence[Received]) -> Written:
        by_session: dict[uuid.UUID, list[Chunk]] = {}
        for received in chunks:
            by_session.setdefault(received.chunk.session_id, []).append(received.chunk)
        if not by_session:
            return Written(0, 0)
        deadline = time.monotonic() + self._budget_s
        order = sorted(by_session, key=lambda sid: self._cost.get(sid, 0.0))
        written = self._transaction("index write", order, by_session, deadline)
        return Written(written, len(chunks) - written)

    def background(self, budget_s: float) -> bool:
        """Index chunks left waiting in the backlog, for up to ``budget_s``; whether
        some are still waiting."""
        if self._behind is None:
            with self._engine.connect() as conn:
                self._behind = set(_sessions_behind(conn))
        if not self._behind:
            return False
        order = sorted(self._behind, key=lambda sid: self._cost.get(sid, 0.0))
        self._transaction("index catch-up", order, {}, time.monotonic() + budget_s)
        return bool(self._behind)

    def refuse(self, refused: Sequence[Refused]) -> None:
        """Nothing: chunks no trusted gateway signed are not indexed (the runner logs them,
        the store keeps them)."""

    def quarantine(self, session_id: uuid.UUID, reason: str, chunks: Sequence[Received]) -> None:
        """Stop indexing a session the index database refused: nothing more of it is taken."""
        self._open.pop(session_id, None)
        with Transaction(self._engine, "index quarantine") as conn:
            self._stop_session(conn, session_id, reason)

    def housekeeping(self, settled: frozenset[int]) -> None:
        """Nothing periodic: waiting chunks are taken by :meth:`background`."""

    # -- one transaction -------------------------------------------------------------

    def _transaction(
        self,
        what: str,
        order: list[uuid.UUID],
        arrived: dict[uuid.UUID, list[Chunk]],
        deadline: float,
    ) -> int:
        try:
            with Transaction(self._engine, what) as conn:
                written = self._write(conn, order, arrived, deadline)
        except BaseException:
            for session_id in order:  # memory may be ahead of what committed
                self._open.pop(session_id, None)
            self._behind = None
            raise
        for session_id in order:
            session = self._open.get(session_id)
            if session is not None and session.ended:
                del self._open[session_id]
        while len(self._open) > CACHE_SESSIONS:
            self._open.popitem(last=False)
        return written

    def _write(
        self,
        conn: Connection,
        order: list[uuid.UUID],
        arrived: dict[uuid.UUID, list[Chunk]],
        deadline: float,
    ) -> int:
        work = self._work(conn, order, arrived)
        documents = _Documents()
        # Every session gets a slice first, so that the cheap ones are done at once;
        # then the costly ones share what is left of the batch's time, cheapest first.
        for item in work:  # cheapest first: ``order`` is sorted by cost
            self._index(conn, item, time.monotonic() + SLICE_S, documents)
        for item in sorted(work, key=lambda w: self._cost.get(w.session.session_id, 0.0)):
            if item.left:
                self._index(conn, item, deadline, documents)
        return self._save(conn, work, documents)

    def _work(
        self, conn: Connection, order: list[uuid.UUID], arrived: dict[uuid.UUID, list[Chunk]]
    ) -> list[_Work]:
        """What each session of the transaction has to index, its state restored."""
        found = locked_rows(conn, [SESSIONS], SESSIONS.c.session_id, sorted(order))
        saved = {row["session_id"]: row for row in found}
        work = []
        for session_id in order:
            row = saved.get(session_id)
            if row is not None and (row["quarantine_reason"] or row["ended"]):
                self._open.pop(session_id, None)
                continue  # re-delivered after its end, or quarantined: nothing to do
            session = self._session(conn, session_id, row)
            new = sorted(
                (c for c in arrived.get(session_id, []) if c.seq >= session.next_seq),
                key=lambda c: c.seq,
            )
            todo = new
            if session_id in self._waiting() or (new and new[0].seq > session.next_seq):
                todo = self._waiting_chunks(conn, session, new)
            work.append(_Work(session, new, todo))
        return work

    def _save(self, conn: Connection, work: list[_Work], documents: _Documents) -> int:
        """Write documents, backlog and states of the transaction; how many of the chunks
        that arrived were taken (indexed, or kept in the backlog for later)."""
        backlog: list[dict[str, Any]] = []
        states: list[dict[str, Any]] = []
        written = 0  # of the chunks that arrived: indexed now, or kept to index later
        for item in work:
            if item.failed:
                continue
            session = item.session
            written += len(item.new)
            self._note_behind(session.session_id, item.left > 0)
            states.append(session.state())
            if session.ended:
                self._forget(conn, session.session_id)
                continue
            backlog += [
                {"session_id": session.session_id, "seq": c.seq, "data": c.raw}
                for c in _to_keep(item.new, session.next_seq)
            ]
            if item.done:
                self._trim(conn, session)
        if backlog:
            conn.execute(
                self._insert(BACKLOG).on_conflict_do_nothing(index_elements=["session_id", "seq"]),
                backlog,
            )
        if documents.rows:
            started = time.monotonic()
            conn.execute(
                self._insert(DOCS).on_conflict_do_nothing(
                    index_elements=["session_id", "kind", "ordinal"]
                ),
                documents.rows,
            )
            if documents.chars > 10_000:  # enough to measure
                spent = (time.monotonic() - started) / documents.chars
                self._insert_s_per_char = (self._insert_s_per_char + spent) / 2
        if states:
            upsert = self._insert(SESSIONS)
            columns = (
                "next_seq",
                "operator",
                "target",
                "started_at",
                "ended",
                "masked_input",
                "ordinals",
                "exit_status",
                "last_digest",
            )
            conn.execute(
                upsert.on_conflict_do_update(
                    index_elements=["session_id"],
                    set_={name: upsert.excluded[name] for name in columns},
                ),
                states,
            )
        return written

    def _index(self, conn: Connection, item: _Work, deadline: float, documents: _Documents) -> None:
        """Apply the item's chunks in order until ``deadline`` (one at least), counting
        the time the documents made so far will take to store; a failure of the
        emulator quarantines the session."""
        session = item.session
        started = time.monotonic()
        try:
            while item.left:
                storing = documents.chars * self._insert_s_per_char
                if item.done and time.monotonic() + storing >= deadline:
                    break  # the rest waits in the backlog
                chunk = item.todo[item.done]
                if chunk.seq >= session.next_seq and not session.ended:
                    documents.add(session.apply(chunk))
                item.done += 1
        except Exception as exc:  # the emulator failed on this session's output
            reason = f"indexing failed at chunk {session.next_seq}: {type(exc).__name__}: {exc}"
            log.exception("session %s quarantined in the index: %s", session.session_id, reason)
            item.failed = True
            self._open.pop(session.session_id, None)
            self._stop_session(conn, session.session_id, reason[:1000], session)
        finally:
            spent = time.monotonic() - started
            self._cost[session.session_id] = spent + self._cost.get(session.session_id, 0.0) / 2

    # -- sessions behind ---------------------------------------------------------------

    def _waiting(self) -> set[uuid.UUID]:
        return self._behind if self._behind is not None else set()

    def _waiting_chunks(
        self, conn: Connection, session: IndexedSession, new: list[Chunk]
    ) -> list[Chunk]:
        """The session's chunks not indexed yet: those waiting in the backlog, then ``new``."""
        waiting = conn.execute(
            select(BACKLOG.c.data)
            .where(BACKLOG.c.session_id == session.session_id, BACKLOG.c.seq >= session.next_seq)
            .order_by(BACKLOG.c.seq)
        )
        chunks = {chunk.seq: chunk for chunk in map(decode_chunk, (d for (d,) in waiting))}
        chunks.update({chunk.seq: chunk for chunk in new})
        return [chunks[seq] for seq in sorted(chunks)]

    def _note_behind(self, session_id: uuid.UUID, behind: bool) -> None:
        if self._behind is None:
            self._behind = set()
        if behind:
            self._behind.add(session_id)
        else:
            self._behind.discard(session_id)

    # -- a session's state ---------------------------------------------------------------

    def _session(self, conn: Connection, session_id: uuid.UUID, row: Any) -> IndexedSession:
        """The session's state as committed: from memory if it matches, else replayed."""
        next_seq = row["next_seq"] if row is not None else 0
        cached = self._open.get(session_id)
        if cached is not None and cached.next_seq == next_seq and not cached.ended:
            self._open.move_to_end(session_id)
            return cached
        session = IndexedSession(session_id)
        if next_seq:
            kept = conn.execute(
                select(BACKLOG.c.data)
                .where(BACKLOG.c.session_id == session_id, BACKLOG.c.seq < next_seq)
                .order_by(BACKLOG.c.seq)
            )
            count = 0
            for (data,) in kept:
                session.apply(decode_chunk(data))  # its documents are already stored
                count += 1
            session.next_seq = next_seq
            session.restore_ordinals(row["ordinals"])
            if session.exit_status is None:
                session.exit_status = row["exit_status"]
            session.last_digest = row["last_digest"]
            log.info("session %s: terminal rebuilt from %d kept chunks", session_id, count)
        self._open[session_id] = session
        return session

    def _trim(self, conn: Connection, session: IndexedSession) -> None:
        """Keep the session's first chunk and its last :data:`KEEP_BYTES` of indexed ones."""
        sizes = conn.execute(
            select(BACKLOG.c.seq, func.length(BACKLOG.c.data))
            .where(
                BACKLOG.c.session_id == session.session_id,
                BACKLOG.c.seq > 0,
                BACKLOG.c.seq < session.next_seq,
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
                        BACKLOG.c.session_id == session.session_id,
                        BACKLOG.c.seq > 0,
                        BACKLOG.c.seq <= cutoff,
                    )
                )
            )

    def _forget(self, conn: Connection, session_id: uuid.UUID) -> None:
        conn.execute(delete(BACKLOG).where(BACKLOG.c.session_id == session_id))
        self._note_behind(session_id, False)
        self._cost.pop(session_id, None)

    def _stop_session(
        self,
        conn: Connection,
        session_id: uuid.UUID,
        reason: str,
        session: IndexedSession | None = None,
    ) -> None:
        values: dict[str, Any] = {
            "session_id": session_id,
            "next_seq": 0,
            "ended": True,
            "quarantine_reason": reason,
        }
        if session is not None:
            values.update(
                operator=session.operator,
                target=session.target,
                started_at=session.started_at,
                next_seq=session.next_seq,
            )
        upsert = self._insert(SESSIONS).values(**values)
        conn.execute(
            upsert.on_conflict_do_update(
                index_elements=["session_id"], set_={"ended": True, "quarantine_reason": reason}
            )
        )
        self._forget(conn, session_id)


def _to_keep(arrived: list[Chunk], next_seq: int) -> list[Chunk]:
    """Of the chunks that arrived, those the backlog must hold: every one not indexed
    yet, and of the indexed ones what :meth:`IndexWriter._trim` would keep -- the
    first chunk and the last :data:`KEEP_BYTES`. A flood indexed as it arrives is then
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


class _Documents:
    """The documents a transaction writes, and the length of their text."""

    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []
        self.chars = 0

    def add(self, rows: list[dict[str, Any]]) -> None:
        self.rows += rows
        self.chars += sum(len(row["text"]) for row in rows)


@dataclass(slots=True)
class _Work:
    """One session's part of a transaction: the chunks to index, how far it got."""

    session: IndexedSession
    new: list[Chunk]  # arrived in this batch
    todo: list[Chunk]  # to index, in order (those waiting before, then the new ones)
    done: int = 0
    failed: bool = False

    @property
    def left(self) -> int:
        return 0 if self.failed else len(self.todo) - self.done


def _sessions_behind(conn: Connection) -> Iterable[uuid.UUID]:
    """Sessions with chunks in the backlog that are not indexed yet."""
    query = (
        select(BACKLOG.c.session_id)
        .join(SESSIONS, SESSIONS.c.session_id == BACKLOG.c.session_id)
        .where(BACKLOG.c.seq >= SESSIONS.c.next_seq, SESSIONS.c.ended.is_(False))
        .distinct()
    )
    return conn.execute(query).scalars()
