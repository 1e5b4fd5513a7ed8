"""Deleting a session from the store, leaving its signed tombstone: the one way a
session goes, for a retention rule and for ``sshtrail delete`` alike.

One transaction per session: its row is locked (``FOR UPDATE`` on PostgreSQL), the
active legal holds are read and a held session is refused (:class:`Held`); the
chain is verified from the stored chunks, so the tombstone says whether what was
deleted had been intact; then the tombstone is written and the session's alerts,
transfers, refused chunks, chunks and row deleted. A failure rolls all of it back:
a session is either whole or a tombstone, never half gone. The access log keeps its
rows: session rules never delete it.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from collections.abc import Sequence
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import delete, insert, select
from sqlalchemy.engine import Connection

from consumer.transaction import locked_rows
from sshtrail import holds, queries, tombstone
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
    keys = [session["signing_key"]] if session["signing_key"] else []
    verdict = verify_chain(queries.stored_chunks(conn, session_id), keys)
    if session["final_digest"] is None:
        session["final_digest"] = verdict.final_digest
    row = tombstone.tombstone_row(
        session,
        verdict=verdict.status.value,
        deleted_at=at,
        rule=rule,
        deleted_by=by,
        reason=reason,
        signer=signer,
    )
    conn.execute(insert(DELETIONS).values(**row))
    for table in (ALERTS, TRANSFERS, REFUSED_CHUNKS, CHUNKS):
        conn.execute(delete(table).where(table.c.session_id == session_id))
    conn.execute(delete(SESSIONS).where(SESSIONS.c.id == session_id))
    log.info("session %s deleted (%s), tombstone kept", session_id, rule or f"by {by}")
    return row


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
