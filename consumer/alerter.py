"""The ``sshtrail-alert`` group's writer: Sigma rules on every command of every session.

Each session's chunks are read, in seq order, by the same command reader the index and
the command policy use (:class:`~sshtrail.indexsession.IndexedSession` over
:mod:`sshtrail.terminal`, held by :class:`~consumer.alertsession.AlertSession`, which
``sshtrail alerts hunt`` reads stored sessions with too). Every command it reads --
typed at a prompt, or an exec request -- becomes the process events Sigma's
``process_creation`` rules describe (:mod:`sshtrail.alertevents`), matched against the
rules in force (:mod:`consumer.alertrules`). An alert is a row of the store's
``alerts`` table, written insert-or-ignore under an id made of the session, the chunk,
the rule and the command's time: a chunk read again (a rebalance, a member killed
mid-batch, a reprocess) raises the same alerts, stored once. The topic and the webhooks
are fed from that table afterwards (:mod:`consumer.alertoutbox`), never inside the
batch: a slow webhook does not hold the group up.

A member that takes a session over mid-way (a restart, a rebalance, a chunk past the
one its reader expects) reads its earlier chunks back from the store -- when the store
has them all and there are at most :data:`MAX_CATCH_UP` -- so the reader knows the
session's prompt and the operator; otherwise it reads on from the chunk in hand, and
the session's operator and target come from the store's row, or stay unknown.
"""

from __future__ import annotations

import logging
import uuid
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any

from prometheus_client import CollectorRegistry, Counter
from sqlalchemy import Engine, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from consumer.alertrules import RulesInForce
from consumer.alertsession import AlertSession
from consumer.messages import Received, Refused
from consumer.transaction import Transaction
from consumer.writer import Written
from sshtrail.errors import WireError
from sshtrail.tables import ALERTS, CHUNKS, SESSIONS
from sshtrail.wire import Chunk, decode_chunk

log = logging.getLogger(__name__)

#: Sessions whose reader is kept in memory at most (the least recently used goes).
MAX_SESSIONS = 10_000
#: A session taken over at most this far in is read again from its first chunk (from
#: the store); further in, it is read on from where it is (a bounded batch).
MAX_CATCH_UP = 64


class AlertWriter:
    """Writes the alerts of each batch of chunks into the store's ``alerts`` table."""

    def __init__(
        self,
        engine: Engine,
        rules: RulesInForce,
        registry: CollectorRegistry | None = None,
        raised: Callable[[], None] = lambda: None,
    ) -> None:
        self._engine = engine
        self._rules = rules
        self._insert = postgresql.insert if engine.dialect.name == "postgresql" else sqlite.insert
        self._sessions: OrderedDict[uuid.UUID, AlertSession] = OrderedDict()
        self._raised = raised
        self._counter = Counter(
            "sshtrail_alerts",
            "Alerts raised, by Sigma rule and level.",
            ["rule", "level"],
            registry=registry,
        )

    # -- the Writer protocol -------------------------------------------------------

    def write(self, chunks: Sequence[Received]) -> Written:
        by_session: dict[uuid.UUID, list[Chunk]] = {}
        for received in chunks:
            by_session.setdefault(received.chunk.session_id, []).append(received.chunk)
        if not by_session:
            return Written(0, 0)
        rows: list[dict[str, Any]] = []
        read = 0
        try:
            with Transaction(self._engine, "alert write") as conn:
                for session_id, arrived in by_session.items():
                    arrived.sort(key=lambda chunk: chunk.seq)
                    read += self._read(conn, session_id, arrived, rows)
                new = self._save(conn, rows)
        except BaseException:
            for session_id in by_session:  # the readers are ahead of what was stored
                self._sessions.pop(session_id, None)
            raise
        for row in new:
            self._counter.labels(row["rule_id"], row["level"]).inc()
        if new:
            self._raised()
        return Written(read, len(chunks) - read)

    def refuse(self, refused: Sequence[Refused]) -> None:
        """Nothing: chunks no trusted gateway signed raise no alerts (the store keeps them)."""

    def quarantine(self, session_id: uuid.UUID, reason: str, chunks: Sequence[Received]) -> None:
        """Forget the session's reader: what the database refused is not read on."""
        self._sessions.pop(session_id, None)
        log.warning("session %s: no more alerts read from it: %s", session_id, reason)

    def background(self, budget_s: float) -> bool:
        return False

    def housekeeping(self, settled: frozenset[int]) -> None:
        """Nothing periodic: the outbox sends what is stored."""

    # -- reading -----------------------------------------------------------------------

    def _read(
        self,
        conn: Connection,
        session_id: uuid.UUID,
        chunks: list[Chunk],
        rows: list[dict[str, Any]],
    ) -> int:
        """Feed ``chunks`` to the session's reader (taken over if needed); the alerts
        they raise are added to ``rows``; how many chunks were new to it."""
        session = self._session(conn, session_id, chunks[0].seq, rows)
        read = 0
        for chunk in chunks:
            if chunk.seq < session.reader.next_seq:
                continue  # read already (a re-delivery)
            if chunk.seq > session.reader.next_seq:
                log.info("session %s: chunks before %d not seen: reading on", session_id, chunk.seq)
            rows += session.apply(chunk, self._rules.current())
            read += 1
        if session.reader.ended:
            self._sessions.pop(session_id, None)
        return read

    def _session(
        self, conn: Connection, session_id: uuid.UUID, first_seq: int, rows: list[dict[str, Any]]
    ) -> AlertSession:
        session = self._sessions.get(session_id)
        if session is not None and session.reader.next_seq >= first_seq:
            self._sessions.move_to_end(session_id)  # in order, or a re-delivery
            return session
        session = AlertSession(session_id)
        if first_seq > 0:
            self._catch_up(conn, session, first_seq, rows)
        self._sessions[session_id] = session
        while len(self._sessions) > MAX_SESSIONS:
            self._sessions.popitem(last=False)
        return session

    def _catch_up(
        self, conn: Connection, session: AlertSession, first_seq: int, rows: list[dict[str, Any]]
    ) -> None:
        """Read the session's chunks before ``first_seq`` back from the store, if it has
        them all (their alerts are raised again: the same ids, stored once); otherwise
        start reading at ``first_seq``, the operator and target from the store's row."""
        session_id = session.reader.session_id
        stored: Sequence[Any] = []
        if first_seq <= MAX_CATCH_UP:  # a long session is read on from where it is
            stored = conn.execute(
                select(CHUNKS.c.seq, CHUNKS.c.data)
                .where(CHUNKS.c.session_id == session_id, CHUNKS.c.seq < first_seq)
                .order_by(CHUNKS.c.seq)
            ).all()
        if stored and [seq for seq, _ in stored] == list(range(first_seq)):
            for _, data in stored:
                try:
                    rows += session.apply(decode_chunk(data), self._rules.current())
                except WireError:
                    break
            if session.reader.next_seq == first_seq:
                return
            session.forget()
        session.reader.next_seq = first_seq
        row = conn.execute(
            select(SESSIONS.c.operator, SESSIONS.c.target, SESSIONS.c.target_user).where(
                SESSIONS.c.id == session_id
            )
        ).first()
        if row is not None:
            session.know(*row)

    def _save(self, conn: Connection, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Insert the alerts not stored yet; those that were new."""
        if not rows:
            return []
        unique = list({row["id"]: row for row in rows}.values())
        known = set(
            conn.execute(
                select(ALERTS.c.id).where(ALERTS.c.id.in_([row["id"] for row in unique]))
            ).scalars()
        )
        new = [row for row in unique if row["id"] not in known]
        if new:
            conn.execute(self._insert(ALERTS).on_conflict_do_nothing(), new)
        return new
