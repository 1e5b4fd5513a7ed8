"""The ``sshtrail-index`` group's writer: sessions into the search index.

Each session gets an :class:`~sshtrail.indexsession.IndexedSession` that its
chunks are fed to in seq order; the documents it completes are written
insert-or-ignore on (session, kind, number), so re-delivery changes nothing.

What a member needs to take a session over -- after a restart, a rebalance,
or a failed transaction -- is in the index itself: ``search_sessions`` (how
far it got, its documents' numbers) and ``search_backlog`` (the session's
first chunk and its last chunks, replayed into a fresh terminal:
:mod:`consumer.indexbacklog`; terminals stay in memory between batches while
they match, :mod:`consumer.indexcache`). So the index never depends on the
store group, and a killed member loses and doubles nothing.

No one session can hold up the others (docs/architecture.md, guarantee 6):

* a batch is indexed within ``BATCH_BUDGET_S`` of work: sessions that have
  been cheap go first (:mod:`consumer.indexschedule`), and chunks left when
  the time is up wait in the backlog -- committed, not lost -- to be indexed
  between batches (:meth:`IndexWriter.background`), session by session in turn;
* a session whose chunks cannot be indexed (the emulator fails on them) is
  quarantined: indexing it stops, with the reason, and nothing else does.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Sequence
from functools import partial
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from consumer.indexbacklog import Backlog, to_keep
from consumer.indexcache import SessionCache
from consumer.indexpurge import IndexPurge
from consumer.indexschedule import BATCH_BUDGET_S, Documents, Schedule, Work
from consumer.messages import Received, Refused
from consumer.transaction import Transaction, locked_rows
from consumer.writer import Written
from sshtrail.indexsession import IndexedSession
from sshtrail.search import DOCS, SESSIONS
from sshtrail.wire import Chunk

log = logging.getLogger(__name__)


class IndexWriter:
    """Writes batches of chunks into the search index, one transaction each."""

    def __init__(
        self, engine: Engine, budget_s: float = BATCH_BUDGET_S, purge: IndexPurge | None = None
    ) -> None:
        self._engine = engine
        #: Removing sessions the store deleted (consumer/indexpurge.py).
        self._purge = purge
        self._postgres = engine.dialect.name == "postgresql"
        self._insert = postgresql.insert if self._postgres else sqlite.insert
        self._budget_s = budget_s
        self._backlog = Backlog(self._insert)
        self._sessions = SessionCache(self._backlog)
        self._schedule = Schedule()

    # -- the Writer protocol -------------------------------------------------------

    def write(self, chunks: Sequence[Received]) -> Written:
        by_session: dict[uuid.UUID, list[Chunk]] = {}
        for received in chunks:
            by_session.setdefault(received.chunk.session_id, []).append(received.chunk)
        if not by_session:
            return Written(0, 0)
        deadline = time.monotonic() + self._budget_s
        order = self._schedule.cheapest_first(by_session)
        written = self._transaction("index write", order, by_session, deadline)
        return Written(written, len(chunks) - written)

    def background(self, budget_s: float) -> bool:
        """Remove sessions the store deleted, then index chunks left waiting in the
        backlog, for up to ``budget_s``; whether some are still waiting."""
        more = self._purge.run(self._engine, self._forget_deleted) if self._purge else False
        return self._catch_up(budget_s) or more

    def _catch_up(self, budget_s: float) -> bool:
        behind = self._backlog.behind(self._engine)
        if not behind:
            return False
        order = self._schedule.cheapest_first(behind)
        self._transaction("index catch-up", order, {}, time.monotonic() + budget_s)
        return self._backlog.any_behind()

    def refuse(self, refused: Sequence[Refused]) -> None:
        """Nothing: chunks no trusted gateway signed are not indexed (the runner logs them,
        the store keeps them)."""

    def quarantine(self, session_id: uuid.UUID, reason: str, chunks: Sequence[Received]) -> None:
        """Stop indexing a session the index database refused: nothing more of it is taken."""
        self._sessions.drop([session_id])
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
            self._sessions.drop(order)  # memory may be ahead of what committed
            self._backlog.unknown()
            raise
        self._sessions.committed(order)
        return written

    def _write(
        self,
        conn: Connection,
        order: list[uuid.UUID],
        arrived: dict[uuid.UUID, list[Chunk]],
        deadline: float,
    ) -> int:
        work = self._work(conn, order, arrived)  # cheapest first: ``order`` is sorted by cost
        documents = Documents()
        self._schedule.run(work, deadline, documents, partial(self._failed, conn))
        return self._save(conn, work, documents)

    def _work(
        self, conn: Connection, order: list[uuid.UUID], arrived: dict[uuid.UUID, list[Chunk]]
    ) -> list[Work]:
        """What each session of the transaction has to index, its state restored."""
        found = locked_rows(conn, [SESSIONS], SESSIONS.c.session_id, sorted(order))
        saved = {row["session_id"]: row for row in found}
        work = []
        for session_id in order:
            row = saved.get(session_id)
            if row is not None and (row["quarantine_reason"] or row["ended"]):
                self._sessions.drop([session_id])
                continue  # re-delivered after its end, or quarantined: nothing to do
            session = self._sessions.get(conn, session_id, row)
            new = sorted(
                (c for c in arrived.get(session_id, []) if c.seq >= session.next_seq),
                key=lambda c: c.seq,
            )
            todo = new
            if self._backlog.is_behind(session_id) or (new and new[0].seq > session.next_seq):
                todo = self._backlog.waiting(conn, session_id, session.next_seq, new)
            work.append(Work(session, new, todo))
        return work

    def _save(self, conn: Connection, work: list[Work], documents: Documents) -> int:
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
            self._backlog.note(session.session_id, item.left > 0)
            states.append(session.state())
            if session.ended:
                self._forget(conn, session.session_id)
                continue
            backlog += [
                {"session_id": session.session_id, "seq": c.seq, "data": c.raw}
                for c in to_keep(item.new, session.next_seq)
            ]
            if item.done:
                self._backlog.trim(conn, session.session_id, session.next_seq)
        if backlog:
            self._backlog.keep(conn, backlog)
        if documents.rows:
            started = time.monotonic()
            conn.execute(
                self._insert(DOCS).on_conflict_do_nothing(
                    index_elements=["session_id", "kind", "ordinal"]
                ),
                documents.rows,
            )
            self._schedule.stored(documents.chars, time.monotonic() - started)
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
                "uncertain_prompt",
            )
            conn.execute(
                upsert.on_conflict_do_update(
                    index_elements=["session_id"],
                    set_={name: upsert.excluded[name] for name in columns},
                ),
                states,
            )
        return written

    def _failed(self, conn: Connection, item: Work, exc: Exception) -> None:
        """The emulator failed on the session's output: quarantine it."""
        session = item.session
        reason = f"indexing failed at chunk {session.next_seq}: {type(exc).__name__}: {exc}"
        log.exception("session %s quarantined in the index: %s", session.session_id, reason)
        self._sessions.drop([session.session_id])
        self._stop_session(conn, session.session_id, reason[:1000], session)

    def _forget_deleted(self, ids: list[uuid.UUID]) -> None:
        self._sessions.drop(ids)
        for session_id in ids:
            self._schedule.forget(session_id)
        self._backlog.unknown()

    def _forget(self, conn: Connection, session_id: uuid.UUID) -> None:
        self._backlog.drop(conn, session_id)
        self._schedule.forget(session_id)

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
