"""The store held to what the index read: two groups, two databases, one topic.

The store group and the index group read the same sessions topic on their
own and write to their own databases, so each is a witness of what the
gateways published. The index keeps, per session, how far it read
(``next_seq``), the digest of the last chunk it read (``last_digest``) and
whether that chunk was the session's end (``ended``). Someone who can write
the store's database can delete a session's last chunks and set its row back
to ``active`` -- which reads as an open session, not as tampering -- or
delete a session whole, and the store alone can no longer tell. Held against
the index, it can (:func:`compare`):

* the index read a session the store has no row and no chunk of: *missing*;
* the index read chunk N with digest H, and the store has no chunk N, or
  one with another digest: *tampered*;
* the index read the session's end at chunk N, and the store has no end,
  or its last seq or final digest differ: *tampered*.

A store group that is behind the index group (lag) also lacks the chunks
the index read last: a finding about an open session is worth a second look
once ``sshtrail lag`` shows the store group caught up. Sessions the store
quarantined (chunks the database refused, in the dead-letter topic) are
only checked for being there.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Literal

from sqlalchemy import RowMapping, select, tuple_
from sqlalchemy.engine import Connection

from sshtrail import search
from sshtrail.errors import WireError
from sshtrail.states import SessionStatus
from sshtrail.tables import CHUNKS, SESSIONS
from sshtrail.wire import decode_chunk

#: Sessions compared at once.
BATCH = 500

Finding = Literal["missing", "tampered"]


@dataclass(frozen=True, slots=True)
class Disagreement:
    """Where the store does not hold what the index read of a session."""

    session_id: uuid.UUID
    finding: Finding
    detail: str


@dataclass(slots=True)
class Tally:
    """How many sessions of the index were compared, and what was found."""

    compared: int = 0
    disagreements: list[Disagreement] = field(default_factory=list)


def indexed(conn: Connection, session_id: uuid.UUID | None = None) -> Iterator[RowMapping]:
    """The index's record of each session it read (or of one), in id order."""
    columns = ("session_id", "next_seq", "ended", "last_digest", "quarantine_reason")
    query = select(*(search.SESSIONS.c[name] for name in columns))
    if session_id is not None:
        query = query.where(search.SESSIONS.c.session_id == session_id)
    yield from conn.execute(query.order_by(search.SESSIONS.c.session_id)).mappings()


def cross_check(index: Connection, store: Connection) -> Tally:
    """Every session the index read, against the store."""
    tally = Tally()
    batch: list[RowMapping] = []
    for row in indexed(index):
        batch.append(row)
        if len(batch) == BATCH:
            tally.disagreements += compare(store, batch)
            tally.compared += len(batch)
            batch = []
    if batch:
        tally.disagreements += compare(store, batch)
        tally.compared += len(batch)
    return tally


def compare(store: Connection, read: Sequence[RowMapping]) -> list[Disagreement]:
    """Where the store disagrees with the index's ``read`` rows (:func:`indexed`)."""
    read = [row for row in read if row["next_seq"] > 0]  # nothing read: nothing to hold
    if not read:
        return []
    ids = [row["session_id"] for row in read]
    columns = ("id", "status", "end_reason", "last_seq", "final_digest")
    rows = {
        row["id"]: row
        for row in store.execute(
            select(*(SESSIONS.c[name] for name in columns)).where(SESSIONS.c.id.in_(ids))
        ).mappings()
    }
    wanted = [(row["session_id"], row["next_seq"] - 1) for row in read]
    chunks = {
        (sid, seq): data
        for sid, seq, data in store.execute(
            select(CHUNKS.c.session_id, CHUNKS.c.seq, CHUNKS.c.data).where(
                tuple_(CHUNKS.c.session_id, CHUNKS.c.seq).in_(wanted)
            )
        )
    }
    with_chunks = set(
        store.execute(
            select(CHUNKS.c.session_id).where(CHUNKS.c.session_id.in_(ids)).distinct()
        ).scalars()
    )
    found = []
    for row in read:
        sid = row["session_id"]
        detail = _disagreement(row, rows.get(sid), chunks.get((sid, row["next_seq"] - 1)))
        if detail is not None:
            gone = sid not in rows and sid not in with_chunks
            found.append(Disagreement(sid, "missing" if gone else "tampered", detail))
    return found


def _disagreement(read: RowMapping, stored: RowMapping | None, data: bytes | None) -> str | None:
    """What the store holds against what the index ``read``; None if they agree."""
    last = read["next_seq"] - 1
    seen = f"the index read chunks 0 to {last}" + (" and the session's end" if _ended(read) else "")
    if stored is None:
        where = "neither its row nor any chunk" if data is None else "no row for it"
        return f"{seen}; the store has {where}"
    if stored["status"] == SessionStatus.QUARANTINED:
        return None  # the chunks the database refused are in the dead-letter topic
    if data is None:
        return f"{seen}; the store has no chunk {last} (status {stored['status']})"
    try:
        digest = decode_chunk(data).digest.hex()
    except WireError as exc:
        return f"{seen}; the store's chunk {last} does not decode: {exc}"
    if read["last_digest"] is not None and digest != read["last_digest"]:
        return (
            f"{seen}; the store's chunk {last} is another one "
            f"(digest {digest[:16]}, the index read {read['last_digest'][:16]})"
        )
    if not _ended(read):
        return None
    if stored["end_reason"] is None:
        return f"{seen}; the store has no end for it (status {stored['status']})"
    if stored["last_seq"] != last:
        return f"{seen}; the store's session ends at chunk {stored['last_seq']}"
    final = stored["final_digest"].hex() if stored["final_digest"] is not None else None
    if read["last_digest"] is not None and final != read["last_digest"]:
        return f"{seen}; the store's final digest is another ({(final or 'none')[:16]})"
    return None


def _ended(read: RowMapping) -> bool:
    """Whether the index read the session's end (a session it quarantined it did not)."""
    return bool(read["ended"]) and not read["quarantine_reason"]
