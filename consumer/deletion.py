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
its sessions, then its rows in unpartitioned tables, then its two partitions detached
and dropped, all in one transaction, so a month is whole or tombstones too.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import delete, insert, select, text
from sqlalchemy.engine import Connection

from consumer.transaction import locked_rows
from sshtrail import holds, partitions, queries, tombstone
from sshtrail.chain import verify_chain
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


def delete_session(
    conn: Connection,
    session_id: uuid.UUID,
    *,
    rule: str | None,
    by: str,
    reason: str,
    signer: Ed25519PrivateKey,
    at: dt.datetime,
) -> dict[str, Any]:
    """Delete the session in ``conn``'s transaction; its tombstone row. :class:`Held`
    when a hold names it, :class:`NotFound` when it is not stored (or already gone)."""
    found = list(locked_rows(conn, list(SESSIONS.c), SESSIONS.c.id, [session_id]))
    if not found:
        raise NotFound(f"session {session_id} is not stored")
    session = dict(found[0])
    held_by = holds.holding(holds.active(conn), session)
    if held_by:
        raise Held(session_id, held_by)
    row = _tombstone(conn, session, rule=rule, by=by, reason=reason, signer=signer, at=at)
    for table in (ALERTS, TRANSFERS, REFUSED_CHUNKS, CHUNKS):
        conn.execute(delete(table).where(table.c.session_id == session_id))
    conn.execute(delete(SESSIONS).where(SESSIONS.c.id == session_id))
    log.info("session %s deleted (%s), tombstone kept", session_id, rule or f"by {by}")
    return row


#: What a month's deletion asks of each of its sessions: the rule deleting it and why,
#: or ``None`` when it is not due (the month is then kept whole).
Decide = Callable[[Mapping[str, Any]], tuple[str, str] | None]


def drop_month(
    conn: Connection,
    month: partitions.Month,
    decide: Decide,
    *,
    by: str,
    signer: Ed25519PrivateKey,
    at: dt.datetime,
) -> int | None:
    """Delete ``month``'s partitions in ``conn``'s transaction when ``decide`` says every
    session in it is due and no hold names one; how many sessions went, or ``None``
    (nothing done) when one is not due, is held, or the month has no partitions.

    New holds wait for the commit (``holds`` locked in SHARE mode) and so do writes to
    the month (its partitions locked in SHARE mode; readers go on): what was checked
    is what is dropped.
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
    sessions = [dict(row) for row in conn.execute(select(SESSIONS).where(in_month)).mappings()]
    active_holds = holds.active(conn)
    decided = []
    for session in sessions:
        why = decide(session)
        if why is None or holds.holding(active_holds, session):
            return None
        decided.append((session, why))
    # The month's chunks in one read of its partition, not a query a session.
    stored: dict[uuid.UUID, list[tuple[int, bytes]]] = {}
    chunks = select(CHUNKS.c.session_id, CHUNKS.c.seq, CHUNKS.c.data).where(
        (CHUNKS.c.session_id >= month.low) & (CHUNKS.c.session_id < month.high)
    )
    for session_id, seq, data in conn.execute(chunks.execution_options(yield_per=2000)):
        stored.setdefault(session_id, []).append((seq, data))
    stones = [
        _tombstone_row(
            session,
            sorted(stored.get(session["id"], [])),
            rule=rule,
            by=by,
            reason=reason,
            signer=signer,
            at=at,
        )
        for session, (rule, reason) in decided
    ]
    for start in range(0, len(stones), 500):
        conn.execute(insert(DELETIONS), stones[start : start + 500])
    for table in (ALERTS, TRANSFERS, REFUSED_CHUNKS):
        column = table.c.session_id
        conn.execute(delete(table).where((column >= month.low) & (column < month.high)))
    partitions.detach_and_drop(conn, month)
    log.info("month %s dropped: %d sessions deleted, tombstones kept", month, len(decided))
    return len(decided)


def _tombstone(
    conn: Connection,
    session: dict[str, Any],
    *,
    rule: str | None,
    by: str,
    reason: str,
    signer: Ed25519PrivateKey,
    at: dt.datetime,
) -> dict[str, Any]:
    """Verify the session's stored chain and write its signed tombstone; the row."""
    stored = queries.stored_chunks(conn, session["id"])
    row = _tombstone_row(session, stored, rule=rule, by=by, reason=reason, signer=signer, at=at)
    conn.execute(insert(DELETIONS).values(**row))
    return row


def _tombstone_row(
    session: dict[str, Any],
    stored: list[tuple[int, bytes]],
    *,
    rule: str | None,
    by: str,
    reason: str,
    signer: Ed25519PrivateKey,
    at: dt.datetime,
) -> dict[str, Any]:
    """The signed tombstone of ``session``, its chain verified from ``stored``."""
    keys = [session["signing_key"]] if session["signing_key"] else []
    verdict = verify_chain(stored, keys)
    if session["final_digest"] is None:
        session["final_digest"] = verdict.final_digest
    return tombstone.tombstone_row(
        session,
        verdict=verdict.status.value,
        deleted_at=at,
        rule=rule,
        deleted_by=by,
        reason=reason,
        signer=signer,
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
