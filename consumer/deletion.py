"""Deleting a session from the store, leaving its signed tombstone: the one way a
session goes, for a retention rule and for ``sshtrail delete`` alike.

One transaction per session: its row is locked (``FOR UPDATE`` on PostgreSQL), the
active legal holds are read and a held session is refused (:class:`Held`); the
chain is verified from the stored chunks, so the tombstone says whether what was
deleted had been intact; then the tombstone is written and the session's alerts,
transfers, refused chunks, chunks and row deleted. A failure rolls all of it back:
a session is either whole or a tombstone, never half gone. The access log keeps its
rows: session rules never delete it.

On a partitioned PostgreSQL store (sshtrail/partitions.py) a month whose every session
is due and none held goes whole (:func:`drop_month`): the same tombstone for each of
its sessions (a big month's chains verified by a pool of processes,
consumer/chainpool.py, while this one signs), then its rows in unpartitioned tables,
then its two partitions detached and dropped, all in one transaction, so a month is
whole or tombstones too.
"""

from __future__ import annotations

import datetime as dt
import itertools
import logging
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import Select, delete, insert, select, text
from sqlalchemy.engine import Connection

from consumer import chainpool
from consumer.transaction import locked_rows
from sshtrail import holds, partitions, queries, tombstone
from sshtrail.errors import InvalidError, NotFound
from sshtrail.tables import ALERTS, CHUNKS, DELETIONS, REFUSED_CHUNKS, SESSIONS, TRANSFERS

log = logging.getLogger(__name__)


class Held(InvalidError):
    """A deletion refused: a legal hold names the session."""

    def __init__(self, session_id: uuid.UUID, hold_ids: Sequence[str]) -> None:
        super().__init__(
            f"session {session_id} is under legal hold ({', '.join(hold_ids)}): not deleted"
        )
        self.session_id = session_id
        self.hold_ids = list(hold_ids)


@dataclass(frozen=True, slots=True)
class Deletion:
    """What a tombstone says of its deletion besides the session: the rule deleting it
    (``None`` for a person's deletion), who, why and when, and the key signing it."""

    rule: str | None
    by: str
    reason: str
    signer: Ed25519PrivateKey
    at: dt.datetime


def delete_session(conn: Connection, session_id: uuid.UUID, deletion: Deletion) -> dict[str, Any]:
    """Delete the session in ``conn``'s transaction; its tombstone row. :class:`Held`
    when a hold names it, :class:`NotFound` when it is not stored (or already gone)."""
    found = list(locked_rows(conn, list(SESSIONS.c), SESSIONS.c.id, [session_id]))
    if not found:
        raise NotFound(f"session {session_id} is not stored")
    session = dict(found[0])
    held_by = holds.holding(holds.active(conn), session)
    if held_by:
        raise Held(session_id, held_by)
    stored = queries.stored_chunks(conn, session_id)
    [checked] = chainpool.check([chain_of(session, stored)])
    row = tombstone_of(session, checked, deletion)
    conn.execute(insert(DELETIONS).values(**row))
    for table in (ALERTS, TRANSFERS, REFUSED_CHUNKS, CHUNKS):
        conn.execute(delete(table).where(table.c.session_id == session_id))
    conn.execute(delete(SESSIONS).where(SESSIONS.c.id == session_id))
    by = deletion.rule or f"by {deletion.by}"
    log.info("session %s deleted (%s), tombstone kept", session_id, by)
    return row


#: What a month's deletion asks of each of its sessions: its deletion, or ``None`` when
#: it is not due (the month is then kept whole).
Decide = Callable[[Mapping[str, Any]], Deletion | None]

#: Chunk rows fetched from the server-side cursor at a time.
READ_ROWS = 5_000
#: Tombstones written per statement.
WRITE_ROWS = 500


def drop_month(
    conn: Connection, month: partitions.Month, decide: Decide, *, workers: int | None = None
) -> int | None:
    """Delete ``month``'s partitions in ``conn``'s transaction when ``decide`` says every
    session in it is due and no hold names one; how many sessions went, or ``None``
    (nothing done) when one is not due, is held, or the month has no partitions.

    New holds wait for the commit (``holds`` locked in SHARE mode) and so do writes to
    the month (its partitions locked in SHARE mode; readers go on): what was checked
    is what is dropped. The chunks are read once, session by session in seq order
    (a server-side cursor: the month is never all in memory), and the chains verified
    by ``workers`` processes (consumer/chainpool.py; by default one a core for a big
    month) while this one signs and writes the tombstones. Only when every tombstone
    is written are the rows and partitions dropped, in the same transaction.
    """
    names = [f"{partitions.SCHEMA}.{month.name(table)}" for table, _ in partitions.TABLES]
    present = conn.execute(
        text("SELECT count(to_regclass(name)) FROM unnest(CAST(:names AS text[])) AS name"),
        {"names": names},
    ).scalar_one()
    if present != len(names):
        return None
    conn.execute(text(f"LOCK TABLE holds, {', '.join(names)} IN SHARE MODE"))
    in_month = (SESSIONS.c.id >= month.low) & (SESSIONS.c.id < month.high)
    sessions = {
        row["id"]: dict(row) for row in conn.execute(select(SESSIONS).where(in_month)).mappings()
    }
    active_holds = holds.active(conn)
    decided: dict[uuid.UUID, Deletion] = {}
    for session_id, session in sessions.items():
        deletion = decide(session)
        if deletion is None or holds.holding(active_holds, session):
            return None
        decided[session_id] = deletion
    if workers is None:
        workers = chainpool.workers_for(sum(s["chunk_count"] or 0 for s in sessions.values()))
    written = _write_tombstones(conn, month, sessions, decided, workers)
    if written != len(decided):  # every session verified once, or nothing is dropped
        raise RuntimeError(f"month {month}: {written} tombstones for {len(decided)} sessions")
    for table in (ALERTS, TRANSFERS, REFUSED_CHUNKS):
        column = table.c.session_id
        conn.execute(delete(table).where((column >= month.low) & (column < month.high)))
    partitions.detach_and_drop(conn, month)
    log.info(
        "month %s dropped: %d sessions deleted, tombstones kept (%d verifying)",
        month,
        len(decided),
        workers,
    )
    return len(decided)


def month_chunks(month: partitions.Month) -> Select[uuid.UUID, int, bytes]:
    """The month's chunks a session after another, each in order (session, seq),
    fetched ``READ_ROWS`` at a time (a server-side cursor on PostgreSQL)."""
    in_month = (CHUNKS.c.session_id >= month.low) & (CHUNKS.c.session_id < month.high)
    return (
        select(CHUNKS.c.session_id, CHUNKS.c.seq, CHUNKS.c.data)
        .where(in_month)
        .order_by(CHUNKS.c.session_id, CHUNKS.c.seq)
        .execution_options(yield_per=READ_ROWS)
    )


def _write_tombstones(
    conn: Connection,
    month: partitions.Month,
    sessions: Mapping[uuid.UUID, dict[str, Any]],
    decided: Mapping[uuid.UUID, Deletion],
    workers: int,
) -> int:
    """Verify the month's chains and write a tombstone a session; how many written."""
    rows = conn.execute(month_chunks(month))
    seen: set[uuid.UUID] = set()

    def chains() -> Iterator[chainpool.Chain]:
        for session_id, group in itertools.groupby(rows, key=lambda row: row[0]):
            seen.add(session_id)
            yield chain_of(sessions[session_id], [(seq, data) for _, seq, data in group])
        # A session without a chunk stored: its verdict says so.
        for session_id in sessions.keys() - seen:
            yield chain_of(sessions[session_id], [])

    written = 0
    pending: list[dict[str, Any]] = []
    for batch in chainpool.verdicts(chains(), workers):
        for checked in batch:
            session_id = checked.session_id
            pending.append(tombstone_of(sessions[session_id], checked, decided[session_id]))
        if len(pending) >= WRITE_ROWS:
            conn.execute(insert(DELETIONS), pending)
            written, pending = written + len(pending), []
    if pending:
        conn.execute(insert(DELETIONS), pending)
        written += len(pending)
    return written


def chain_of(session: Mapping[str, Any], stored: list[tuple[int, bytes]]) -> chainpool.Chain:
    """What the pool verifies of ``session``: its stored (seq, data) chunks, in order,
    against the key its start named (none: the verdict says unsigned)."""
    keys = (session["signing_key"],) if session["signing_key"] else ()
    return chainpool.Chain(session["id"], stored, keys)


def tombstone_of(
    session: dict[str, Any], checked: chainpool.Checked, deletion: Deletion
) -> dict[str, Any]:
    """The signed tombstone of ``session``, whose chain verified as ``checked``."""
    if session["final_digest"] is None:
        session["final_digest"] = checked.final_digest
    return tombstone.tombstone_row(
        session,
        verdict=checked.status.value,
        deleted_at=deletion.at,
        rule=deletion.rule,
        deleted_by=deletion.by,
        reason=deletion.reason,
        signer=deletion.signer,
    )


def deleted_ids(conn: Connection, ids: Sequence[uuid.UUID]) -> set[uuid.UUID]:
    """Which of ``ids`` have a tombstone: their chunks are not stored again (a reprocess
    of their offsets does not bring them back)."""
    found: set[uuid.UUID] = set()
    unique = sorted(set(ids))
    for start in range(0, len(unique), 500):
        query = select(DELETIONS.c.session_id).where(
            DELETIONS.c.session_id.in_(unique[start : start + 500])
        )
        found.update(conn.execute(query).scalars())
    return found
