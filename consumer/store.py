"""The ``sshtrail-store`` group's writer: chunks and session rows into the SQL database.

A batch is one transaction:

1. a ``sessions`` row for every session in the batch, if it has none yet;
2. the chunks, ``INSERT ... ON CONFLICT DO NOTHING RETURNING`` their keys,
   so a re-delivered chunk changes nothing and is counted as a duplicate;
3. the touched session rows, locked (``FOR UPDATE`` on PostgreSQL; SQLite
   has one writer at a time), updated from the chunks that were new.

Both engines take the multi-row fast path ("insertmanyvalues"): one
statement per few hundred rows, not one per row.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
import uuid
from collections.abc import Callable, Sequence
from typing import cast

from sqlalchemy import Engine, Table, Text, bindparam, select, update
from sqlalchemy import cast as sql_cast
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from consumer import transfers
from consumer.chunkrow import chunk_row
from consumer.deletion import deleted_ids
from consumer.messages import Received, Refused
from consumer.pgcopy import copy_chunks, track_staging_table
from consumer.refusals import EvidenceBudget, keep_refused
from consumer.retentionwork import RetentionWork
from consumer.sessionrow import COLUMNS, SessionRow, new_session_values
from consumer.transaction import Transaction, locked_rows
from consumer.writer import Written
from sshtrail import queries
from sshtrail.chain import Status, missing_ranges, verify_chain
from sshtrail.models import ChunkRecord, SessionRecord
from sshtrail.seqranges import read_gaps
from sshtrail.states import SessionStatus

log = logging.getLogger(__name__)

SESSIONS = cast(Table, SessionRecord.__table__)
CHUNKS = cast(Table, ChunkRecord.__table__)
# ``gaps`` as text, read by sshtrail.seqranges: a value a database writer put there
# is recovered from (see _locked), not a JSON error stopping the group.
_ROW_COLUMNS = [
    sql_cast(SESSIONS.c.gaps, Text).label("gaps") if name == "gaps" else SESSIONS.c[name]
    for name in COLUMNS
]


class StoreWriter:
    """Writes batches of chunks; see the module docstring for the steps."""

    def __init__(
        self,
        engine: Engine,
        interrupted_after: dt.timedelta,
        clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
        evidence_max_bytes: int = 256 << 20,
        retention: RetentionWork | None = None,
    ) -> None:
        self._engine = engine
        #: Deleting what the retention rules say is due (between batches).
        self._retention = retention
        #: What of the refused chunks is kept (``consumer.refused_chunks_max_mib``).
        self.evidence = EvidenceBudget(evidence_max_bytes)
        self._postgres = engine.dialect.name == "postgresql"
        if self._postgres:
            track_staging_table(engine)
        self._insert = postgresql.insert if self._postgres else sqlite.insert
        self._interrupted_after = interrupted_after
        self._clock = clock
        #: Whether sessions may wait for their transfers to be read: at start (a
        #: backlog, or sessions the migration marked), and after a write that
        #: marked one. Background work asks the database only then.
        self._transfers_waiting = True

    def write(self, chunks: Sequence[Received]) -> Written:
        """Store ``chunks`` in one transaction; :class:`DatabaseError` if it fails."""
        unique: dict[tuple[uuid.UUID, int], Received] = {}
        for received in chunks:  # the first of a seq read is kept, as across batches
            unique.setdefault((received.chunk.session_id, received.chunk.seq), received)
        if not unique:
            return Written(0, 0)
        with self._transaction("write") as conn:
            # A deleted session's tombstone wins: its chunks read again (a reprocess of
            # its offsets) are not stored, and count as duplicates.
            gone = deleted_ids(conn, [sid for sid, _ in unique])
            unique = {key: r for key, r in unique.items() if key[0] not in gone}
            if not unique:
                return Written(0, len(chunks))
            if self._postgres:
                new = copy_chunks(conn, list(unique.values()))
            else:
                self._ensure_sessions(conn, {sid for sid, _ in unique})
                new = self._insert_chunks(conn, list(unique.values()))
            marked = self._update_sessions(conn, [r for key, r in unique.items() if key in new])
        self._transfers_waiting |= marked
        return Written(len(new), len(chunks) - len(new))

    def refuse(self, refused: Sequence[Refused]) -> None:
        """Keep chunks no trusted gateway signed as evidence (``consumer/refusals.py``)."""
        with self._transaction("refuse") as conn:
            keep_refused(conn, self._insert, self.evidence.admit(conn, refused))

    def background(self, budget_s: float) -> bool:
        """Delete sessions retention says are due (``consumer/retentionwork.py``), then
        read the transfers of ended SFTP/SCP sessions, for about ``budget_s`` in all;
        whether some work waits."""
        started = time.monotonic()
        more = self._retention.run(budget_s / 2) if self._retention is not None else False
        return self._transfers(budget_s - (time.monotonic() - started)) or more

    def _transfers(self, budget_s: float) -> bool:
        """Read the transfers of ended SFTP/SCP sessions (``consumer/transfers.py``),
        one session per transaction, for about ``budget_s``; whether some wait."""
        if not self._transfers_waiting:
            return False
        deadline = time.monotonic() + budget_s
        while True:
            with self._transaction("transfers") as conn:
                waiting = transfers.pending_sessions(conn, 2)
                if not waiting:
                    self._transfers_waiting = False
                    return False
                found = transfers.read_transfers(conn, waiting[0])
            log.info("session %s: %d file operations read", waiting[0], found)
            if len(waiting) == 1:
                return False
            if time.monotonic() >= deadline:
                return True

    def housekeeping(self, settled: frozenset[int]) -> None:
        """Mark ``interrupted`` the open sessions whose gateway has been silent longer
        than ``interrupted_after``: no chunk, not even a keep-alive (sshtrail/interrupted.py).
        Only sessions on ``settled`` partitions: one whose chunks wait unread here is
        not silent, only not read yet."""
        if not settled:
            return
        now = self._clock()
        cutoff = now - self._interrupted_after
        silent = (
            (SESSIONS.c.status == SessionStatus.ACTIVE)
            & (SESSIONS.c.last_chunk_at < cutoff)
            & (CHUNKS.c.partition.in_(sorted(settled)))
        )
        with self._transaction("housekeeping") as conn:
            found = conn.execute(
                select(
                    SESSIONS.c.id, SESSIONS.c.started_at, SESSIONS.c.last_chunk_at, CHUNKS.c.t_last
                )
                .join(
                    CHUNKS,
                    (CHUNKS.c.session_id == SESSIONS.c.id) & (CHUNKS.c.seq == SESSIONS.c.last_seq),
                )
                .where(silent)
            ).all()
            marks = [
                {
                    "row_id": sid,
                    # Last heard from: its last event, as its gateway's clock had it.
                    "heard": started + dt.timedelta(microseconds=t_last // 1000)
                    if started is not None
                    else last_chunk_at,
                }
                for sid, started, last_chunk_at, t_last in found
            ]
            if marks:  # still silent and open when the row is changed: no race with a write
                conn.execute(
                    update(SESSIONS)
                    .where(
                        SESSIONS.c.id == bindparam("row_id"),
                        SESSIONS.c.status == SessionStatus.ACTIVE,
                        SESSIONS.c.last_chunk_at < cutoff,
                    )
                    .values(
                        status=SessionStatus.INTERRUPTED,
                        interrupted_at=now,
                        ended_at=bindparam("heard"),
                    ),
                    marks,
                )
        for mark in marks:
            log.warning(
                "session %s: no chunk from its gateway since %s: marked interrupted "
                "(by the store: no signed end)",
                mark["row_id"],
                mark["heard"].isoformat(timespec="seconds"),
            )

    def _transaction(self, what: str) -> Transaction:
        return Transaction(self._engine, what)

    def quarantine(self, session_id: uuid.UUID, reason: str, chunks: Sequence[Received]) -> None:
        """Mark the session quarantined (its refused ``chunks`` go to the dead-letter topic)."""
        with self._transaction("quarantine") as conn:
            self._ensure_sessions(conn, {session_id})
            [row] = _locked(conn, [session_id])
            row.quarantine(reason)
            self._save(conn, [row])

    def _ensure_sessions(self, conn: Connection, ids: set[uuid.UUID]) -> None:
        values = new_session_values()
        rows = [{"id": sid, **values} for sid in sorted(ids)]
        conn.execute(self._insert(SESSIONS).on_conflict_do_nothing(index_elements=["id"]), rows)

    def _insert_chunks(
        self, conn: Connection, chunks: list[Received]
    ) -> set[tuple[uuid.UUID, int]]:
        rows = [chunk_row(r) for r in chunks]
        statement = (
            self._insert(CHUNKS)
            .on_conflict_do_nothing(index_elements=["session_id", "seq"])
            .returning(CHUNKS.c.session_id, CHUNKS.c.seq)
        )
        return {(sid, seq) for sid, seq in conn.execute(statement, rows)}

    def _update_sessions(self, conn: Connection, new: list[Received]) -> bool:
        """Update the rows of the sessions ``new`` chunks belong to; whether one of them
        now waits for its transfers to be read."""
        by_session: dict[uuid.UUID, list[Received]] = {}
        for received in new:
            by_session.setdefault(received.chunk.session_id, []).append(received)
        # Sorted ids: concurrent members lock rows in the same order (no deadlock).
        rows = {row.record.id: row for row in _locked(conn, sorted(by_session))}
        for session_id, chunks in by_session.items():
            row = rows[session_id]
            for received in sorted(chunks, key=lambda r: r.chunk.seq):
                row.add(received.chunk, received.published_at)
        for row in rows.values():
            if row.needs_full_verify:
                self._verify_stored(conn, row)
        self._save(conn, list(rows.values()))
        return any(row.record.transfers == transfers.PENDING for row in rows.values())

    def _save(self, conn: Connection, rows: list[SessionRow]) -> None:
        if rows:
            changes = [{"row_id": row.record.id, **row.values()} for row in rows]
            for change in changes:
                del change["id"]  # the key is matched, not set
            conn.execute(update(SESSIONS).where(SESSIONS.c.id == bindparam("row_id")), changes)

    def _verify_stored(self, conn: Connection, row: SessionRow) -> None:
        """Check a session whose chunks came out of order, from what is stored."""
        record = row.record
        keys = [record.signing_key] if record.signing_key else []
        verdict = verify_chain(queries.stored_chunks(conn, record.id), keys)
        record.verified = verdict.status == Status.OK
        record.final_digest = verdict.final_digest
        if not record.verified:
            log.warning("session %s: stored chain does not verify: %s", record.id, verdict.detail)


def _locked(conn: Connection, ids: list[uuid.UUID]) -> list[SessionRow]:
    """The session rows of ``ids``, locked. Gaps that are not what a store writes
    (a database writer's edit) are taken again from the chunks stored, so the
    row is right again after this batch."""
    rows = []
    for found in locked_rows(conn, _ROW_COLUMNS, SESSIONS.c.id, ids):
        values = dict(found)
        gaps = read_gaps(values["gaps"], None, values["last_seq"])
        if gaps.problem is None:
            values["gaps"] = gaps.as_json()
        else:
            log.warning(
                "session %s: stored gaps are not a store's (%s): taken again from its chunks",
                values["id"],
                gaps.problem[:200],
            )
            values["gaps"] = _stored_gaps(conn, values["id"], values["last_seq"])
        rows.append(SessionRow.from_mapping(values))
    return rows


def _stored_gaps(conn: Connection, session_id: uuid.UUID, last_seq: int | None) -> list[list[int]]:
    """The seqs missing below ``last_seq`` among the session's stored chunks."""
    if last_seq is None:
        return []
    query = select(CHUNKS.c.seq).where(CHUNKS.c.session_id == session_id, CHUNKS.c.seq <= last_seq)
    present = [*conn.execute(query).scalars(), last_seq]
    return [[low, high] for low, high in missing_ranges(present)]
