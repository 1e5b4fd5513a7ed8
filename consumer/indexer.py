"""The ``sshtrail-index`` group's writer: sessions into the search index.

Each session gets a :class:`~consumer.terminal.Terminal` that its chunks are
fed to in seq order; what it finds (output lines, commands), the exec command
and the session's metadata become documents numbered per kind. Replaying a
session from its first chunk numbers them the same way, so writes are
insert-or-ignore on (session, kind, ordinal) and re-delivery changes nothing.

A terminal lives in memory while its session is open. What a member needs to
rebuild it -- after a restart, a rebalance, or a failed transaction -- is in
the index itself: ``search_sessions.next_seq`` and the session's chunks so far
in ``search_backlog``, replayed into a fresh terminal. So the index never
depends on the store group, and a killed member loses and doubles nothing.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Engine, delete, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from consumer.messages import Received
from consumer.runner import Written
from consumer.terminal import Found, Terminal
from consumer.transaction import Transaction, locked_rows
from sshtrail.events import End, Exec, Input, Output, Resize, Start
from sshtrail.search import BACKLOG, DOCS, SESSIONS
from sshtrail.wire import Chunk, decode_chunk

log = logging.getLogger(__name__)

#: Open sessions whose terminal stays in memory; others are rebuilt on demand.
CACHE_SESSIONS = 2000


class _Session:
    """One session's indexing state: its terminal and how far it got."""

    def __init__(self, session_id: uuid.UUID, next_seq: int = 0, ended: bool = False) -> None:
        self.session_id = session_id
        self.next_seq = next_seq
        self.ended = ended
        self.operator: str | None = None
        self.target: str | None = None
        self.started_at: dt.datetime | None = None
        self.terminal: Terminal | None = None
        #: A forwarded TCP connection: its bytes are indexed as nothing.
        self.forwarded = False
        self._ordinals = {"command": 0, "output": 0, "meta": 0}

    def apply(self, chunk: Chunk) -> list[dict[str, Any]]:
        """Feed one chunk (the next in seq order); returns the documents it completed."""
        found: list[Found] = []
        for event in chunk.events:
            if isinstance(event, Start):
                self._start(event, found)
            elif isinstance(event, Output | Input) and self.forwarded:
                continue  # a forwarded connection's bytes are not a terminal's
            elif isinstance(event, Output):
                self._screen().output(event.data, event.t)
            elif isinstance(event, Input):
                self._screen().input(event.data, event.t)
            elif isinstance(event, Resize):
                self._screen().resize(event.cols, event.rows)
            elif isinstance(event, Exec) and event.mode == "exec":
                command = event.command.decode("utf-8", "replace")
                found.append(Found("command", command, event.t))
            elif isinstance(event, Exec) and event.mode == "direct-tcpip":
                self.forwarded = True
                where = event.command.decode("utf-8", "replace")
                found.append(Found("meta", f"direct-tcpip forwarded to {where}", event.t))
            elif isinstance(event, End):
                self._screen().finish(event.t)
                self.ended = True
        if self.terminal is not None:
            self.terminal.flush()  # what this chunk showed is searchable now
            found.extend(self.terminal.found)
            self.terminal.found.clear()
        self.next_seq = chunk.seq + 1
        found.sort(key=lambda f: f.t)  # stable: a terminal's own order is kept
        return [self._document(f, chunk.seq) for f in found]

    def state(self) -> dict[str, Any]:
        return {
            "session_id": self.session_id,
            "next_seq": self.next_seq,
            "operator": self.operator,
            "target": self.target,
            "started_at": self.started_at,
            "ended": self.ended,
        }

    def _start(self, start: Start, found: list[Found]) -> None:
        self.operator, self.target = start.operator[:255], start.target[:255]
        self.started_at = dt.datetime.fromtimestamp(start.started_at / 1e9, dt.UTC)
        self.terminal = Terminal(start.cols, start.rows, pty=bool(start.term))
        meta = (
            f"operator {start.operator} target {start.target} client {start.client} "
            f"user {start.user} host {start.host}:{start.port}"
        )
        found.append(Found("meta", meta, start.t))

    def _screen(self) -> Terminal:
        if self.terminal is None:  # chunk 0 never arrived: assume a common terminal
            self.terminal = Terminal(80, 24, pty=True)
        return self.terminal

    def _document(self, found: Found, seq: int) -> dict[str, Any]:
        ordinal = self._ordinals[found.kind]
        self._ordinals[found.kind] = ordinal + 1
        at = (
            self.started_at + dt.timedelta(microseconds=found.t // 1000)
            if self.started_at
            else None
        )
        return {
            "session_id": self.session_id,
            "kind": found.kind,
            "ordinal": ordinal,
            "seq": seq,
            "t": found.t,
            "at": at,
            "operator": self.operator,
            "target": self.target,
            "text": found.text.replace("\x00", ""),
        }


class IndexWriter:
    """Writes batches of chunks into the search index, one transaction each."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._postgres = engine.dialect.name == "postgresql"
        self._insert = postgresql.insert if self._postgres else sqlite.insert
        self._open: OrderedDict[uuid.UUID, _Session] = OrderedDict()

    def write(self, chunks: Sequence[Received]) -> Written:
        by_session: dict[uuid.UUID, list[Chunk]] = {}
        for received in chunks:
            by_session.setdefault(received.chunk.session_id, []).append(received.chunk)
        if not by_session:
            return Written(0, 0)
        try:
            with Transaction(self._engine, "index write") as conn:
                written = self._write(conn, by_session)
        except BaseException:
            for session_id in by_session:  # memory may be ahead of what committed
                self._open.pop(session_id, None)
            raise
        for session_id in by_session:
            session = self._open.get(session_id)
            if session is not None and session.ended:
                del self._open[session_id]
        while len(self._open) > CACHE_SESSIONS:
            self._open.popitem(last=False)
        return Written(written, len(chunks) - written)

    def housekeeping(self) -> None:
        """Nothing periodic: the index has no timers."""

    def _write(self, conn: Connection, by_session: dict[uuid.UUID, list[Chunk]]) -> int:
        found = locked_rows(conn, [SESSIONS], SESSIONS.c.session_id, sorted(by_session))
        saved = {row["session_id"]: row for row in found}
        documents: list[dict[str, Any]] = []
        backlog: list[dict[str, Any]] = []
        states: list[dict[str, Any]] = []
        written = 0
        for session_id, chunks in by_session.items():
            row = saved.get(session_id)
            session = self._session(
                conn, session_id, row["next_seq"] if row else 0, bool(row and row["ended"])
            )
            for chunk in sorted(chunks, key=lambda c: c.seq):
                if chunk.seq < session.next_seq or session.ended:
                    continue  # re-delivered, or after the end: already indexed
                documents += session.apply(chunk)
                written += 1
                if not session.ended:
                    backlog.append({"session_id": session_id, "seq": chunk.seq, "data": chunk.raw})
            states.append(session.state())
            if session.ended:
                conn.execute(delete(BACKLOG).where(BACKLOG.c.session_id == session_id))
        if documents:
            conn.execute(
                self._insert(DOCS).on_conflict_do_nothing(
                    index_elements=["session_id", "kind", "ordinal"]
                ),
                documents,
            )
        if backlog:
            conn.execute(
                self._insert(BACKLOG).on_conflict_do_nothing(index_elements=["session_id", "seq"]),
                backlog,
            )
        upsert = self._insert(SESSIONS)
        conn.execute(
            upsert.on_conflict_do_update(
                index_elements=["session_id"],
                set_={
                    name: upsert.excluded[name]
                    for name in ("next_seq", "operator", "target", "started_at", "ended")
                },
            ),
            states,
        )
        return written

    def _session(
        self, conn: Connection, session_id: uuid.UUID, next_seq: int, ended: bool
    ) -> _Session:
        """The session's state as committed: from memory if it matches, else replayed."""
        cached = self._open.get(session_id)
        if cached is not None and cached.next_seq == next_seq and cached.ended == ended:
            self._open.move_to_end(session_id)
            return cached
        session = _Session(session_id)
        if ended:
            session.next_seq, session.ended = next_seq, True
        elif next_seq:
            replayed = conn.execute(
                select(BACKLOG.c.data)
                .where(BACKLOG.c.session_id == session_id)
                .order_by(BACKLOG.c.seq)
            )
            for (data,) in replayed:
                session.apply(decode_chunk(data))  # its documents are already stored
            session.next_seq = next_seq
            log.info("session %s: terminal rebuilt from %d stored chunks", session_id, next_seq)
        self._open[session_id] = session
        return session
