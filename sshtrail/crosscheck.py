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
once ``sshtrail lag`` shows the store group caught up.

A session the store quarantined lacks the chunks its database refused, and
only those: the store group sent them to the dead-letter topic (where a
database writer cannot write) and went on storing the session's other
chunks. So a quarantined session is held to every chunk up to the last one
the index read: each is stored or dead-lettered by the store group
(:class:`DeadLetters`), the last one with the digest the index read, and an
end the index read and the store holds is on the row. A status alone proves
nothing: a writer can set it.

Every value is checked for the type the writers put there; one a database
writer made unreadable makes its session *tampered* ("unreadable ...") and
the others are still compared.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from sqlalchemy import RowMapping, select, tuple_
from sqlalchemy.engine import Connection

from sshtrail import search
from sshtrail.errors import WireError
from sshtrail.seqranges import describe_ranges
from sshtrail.states import SessionStatus
from sshtrail.tables import CHUNKS, DELETIONS, SESSIONS
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


#: seq -> hex digest of each chunk of a session on the dead-letter topic.
Refused = Mapping[int, str]


class DeadLetters(Protocol):
    """The chunks the store group sent to the dead-letter topic
    (:class:`sshtrail.letters.StoreLetters`)."""

    def refused(self, sessions: Collection[uuid.UUID]) -> Mapping[uuid.UUID, Refused]:
        """seq -> digest of the dead-lettered chunks of each of ``sessions`` that has any."""
        ...


def cross_check(index: Connection, store: Connection, letters: DeadLetters) -> Tally:
    """Every session the index read, against the store."""
    tally = Tally()
    batch: list[RowMapping] = []
    for row in indexed(index):
        batch.append(row)
        if len(batch) == BATCH:
            tally.disagreements += compare(store, batch, letters)
            tally.compared += len(batch)
            batch = []
    if batch:
        tally.disagreements += compare(store, batch, letters)
        tally.compared += len(batch)
    return tally


@dataclass(frozen=True, slots=True)
class _Read:
    """What the index read of a session, its values checked."""

    session_id: uuid.UUID
    last: int
    #: The index read the session's end (and did not quarantine it).
    ended: bool
    digest: str | None

    @property
    def seen(self) -> str:
        end = " and the session's end" if self.ended else ""
        return f"the index read chunks 0 to {self.last}{end}"


@dataclass(frozen=True, slots=True)
class _Stored:
    """The store's row of a session, its values checked."""

    status: str
    ended: bool
    last_seq: int | None
    final_digest: str | None


#: The largest seq a chunk can have (the wire format's and the columns' 64 bits).
_MAX_SEQ = 2**63 - 1


def compare(
    store: Connection, read: Sequence[RowMapping], letters: DeadLetters
) -> list[Disagreement]:
    """Where the store disagrees with the index's ``read`` rows (:func:`indexed`)."""
    found: list[Disagreement] = []
    records: list[_Read] = []
    for row in read:
        record = _index_record(row)
        if isinstance(record, str):
            why = f"the index's record of it is unreadable: {record}"
            found.append(Disagreement(row["session_id"], "tampered", why))
        elif record.last >= 0:  # nothing read: nothing to hold
            records.append(record)
    if not records:
        return found
    ids = [record.session_id for record in records]
    # A deleted session is accounted for by its signed tombstone (``sshtrail deletions``).
    deleted = set(
        store.execute(
            select(DELETIONS.c.session_id).where(DELETIONS.c.session_id.in_(ids))
        ).scalars()
    )
    records = [record for record in records if record.session_id not in deleted]
    ids = [record.session_id for record in records]
    columns = ("id", "status", "end_reason", "last_seq", "final_digest")
    rows = {
        row["id"]: _store_record(row)
        for row in store.execute(
            select(*(SESSIONS.c[name] for name in columns)).where(SESSIONS.c.id.in_(ids))
        ).mappings()
    }
    wanted = [(record.session_id, record.last) for record in records]
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
    quarantined = {sid for sid, row in rows.items() if isinstance(row, _Stored) and _held(row)}
    missing = _missing(store, [r for r in records if r.session_id in quarantined])
    refused = letters.refused(sorted(missing)) if missing else {}
    for record in records:
        sid = record.session_id
        stored = rows.get(sid)
        data = chunks.get((sid, record.last))
        if stored is None:
            where = "neither its row nor any chunk" if sid not in with_chunks else "no row for it"
            detail: str | None = f"{record.seen}; the store has {where}"
        elif isinstance(stored, str):
            detail = f"{record.seen}; the store's row is unreadable: {stored}"
        elif sid in quarantined:
            detail = _quarantined(record, stored, data, missing.get(sid, ()), refused.get(sid))
        else:
            detail = _disagreement(record, stored, data)
        if detail is not None:
            gone = stored is None and sid not in with_chunks
            found.append(Disagreement(sid, "missing" if gone else "tampered", detail))
    return found


def _held(stored: _Stored) -> bool:
    return stored.status == SessionStatus.QUARANTINED


def _index_record(row: RowMapping) -> _Read | str:
    """The index's row checked, or what is wrong with it."""
    next_seq = row["next_seq"]
    if not _whole(next_seq) or not 0 <= next_seq <= _MAX_SEQ + 1:
        return f"next_seq {_shown(next_seq)} is not a chunk count"
    digest = row["last_digest"]
    if digest is not None and not _hex_digest(digest):
        return f"last_digest {_shown(digest)} is not a digest"
    ended, reason = row["ended"], row["quarantine_reason"]
    if ended not in (None, True, False, 0, 1) or not isinstance(reason, str | None):
        return f"ended {_shown(ended)} or quarantine_reason {_shown(reason)} is not as written"
    return _Read(row["session_id"], next_seq - 1, bool(ended) and not reason, digest)


def _store_record(row: RowMapping) -> _Stored | str:
    """The store's row checked, or what is wrong with it."""
    status, end_reason, last_seq, final = (
        row["status"],
        row["end_reason"],
        row["last_seq"],
        row["final_digest"],
    )
    if status not in set(SessionStatus):
        return f"status {_shown(status)} is not a status"
    if not isinstance(end_reason, str | None):
        return f"end_reason {_shown(end_reason)} is not text"
    if last_seq is not None and (not _whole(last_seq) or not 0 <= last_seq <= _MAX_SEQ):
        return f"last_seq {_shown(last_seq)} is not a seq"
    if final is not None and (not isinstance(final, bytes) or len(final) != 32):
        return f"final_digest {_shown(final)} is not a digest"
    return _Stored(status, end_reason is not None, last_seq, final.hex() if final else None)


def _disagreement(read: _Read, stored: _Stored, data: object) -> str | None:
    """What the store holds against what the index ``read``; None if they agree."""
    seen, last = read.seen, read.last
    if data is None:
        return f"{seen}; the store has no chunk {last} (status {stored.status})"
    problem = _other_chunk(read, data, "the store's")
    if problem is not None:
        return f"{seen}; {problem}"
    if not read.ended:
        return None
    if not stored.ended:
        return f"{seen}; the store has no end for it (status {stored.status})"
    if stored.last_seq != last:
        return f"{seen}; the store's session ends at chunk {stored.last_seq}"
    if read.digest is not None and stored.final_digest != read.digest:
        final = (stored.final_digest or "none")[:16]
        return f"{seen}; the store's final digest is another ({final})"
    return None


def _quarantined(
    read: _Read,
    stored: _Stored,
    data: object,
    missing: Sequence[tuple[int, int]],
    refused: Refused | None,
) -> str | None:
    """A session the store quarantined: each chunk up to the last the index read is
    stored or was dead-lettered by the store group; the last one is the one the index
    read; an end the store holds is on its row."""
    seen, last = f"{read.seen}, and the store quarantined it", read.last
    letters = refused or {}
    unaccounted = _without(missing, letters)
    if unaccounted:
        one = len(unaccounted) == 1 and unaccounted[0][0] == unaccounted[0][1]
        which = f"chunk {unaccounted[0][0]}" if one else f"chunks {describe_ranges(unaccounted)}"
        none = "it" if one else "any of them"
        return f"{seen}; the store lacks {which}, and the store group did not dead-letter {none}"
    if data is None:
        if read.digest is not None and letters.get(last) != read.digest:
            return f"{seen}; its dead-lettered chunk {last} is another one"
        return None
    problem = _other_chunk(read, data, "the store's")
    if problem is not None:
        return f"{seen}; {problem}"
    if read.ended and (not stored.ended or stored.last_seq != last):
        return f"{seen}; the store holds the end chunk {last} but its row has no end at it"
    return None


def _other_chunk(read: _Read, data: object, whose: str) -> str | None:
    """Why the stored chunk ``data`` is not the one the index read last; None if it is."""
    if not isinstance(data, bytes):
        return f"{whose} chunk {read.last} is unreadable: {_shown(data)} is not a chunk"
    try:
        digest = decode_chunk(data).digest.hex()
    except WireError as exc:
        return f"{whose} chunk {read.last} does not decode: {exc}"
    if read.digest is not None and digest != read.digest:
        return (
            f"{whose} chunk {read.last} is another one "
            f"(digest {digest[:16]}, the index read {read.digest[:16]})"
        )
    return None


def _missing(store: Connection, records: Sequence[_Read]) -> dict[uuid.UUID, list[tuple[int, int]]]:
    """The seq ranges from 0 to the last the index read that the store lacks, of each of
    ``records`` that lacks any."""
    if not records:
        return {}
    stored: dict[uuid.UUID, list[int]] = {}
    query = (
        select(CHUNKS.c.session_id, CHUNKS.c.seq)
        .where(CHUNKS.c.session_id.in_([r.session_id for r in records]))
        .order_by(CHUNKS.c.session_id, CHUNKS.c.seq)
    )
    for sid, seq in store.execute(query):
        if _whole(seq):
            stored.setdefault(sid, []).append(seq)
    found: dict[uuid.UUID, list[tuple[int, int]]] = {}
    for record in records:
        ranges, expected = [], 0
        for seq in stored.get(record.session_id, []):
            if seq > record.last:
                break
            if seq > expected:
                ranges.append((expected, seq - 1))
            expected = max(expected, seq + 1)
        if expected <= record.last:
            ranges.append((expected, record.last))
        if ranges:
            found[record.session_id] = ranges
    return found


def _without(ranges: Sequence[tuple[int, int]], letters: Refused) -> list[tuple[int, int]]:
    """``ranges`` less the seqs in ``letters``; the letters are few, the ranges need not be."""
    left: list[tuple[int, int]] = []
    for first, high in ranges:
        low = first
        for seq in sorted(s for s in letters if first <= s <= high):
            if seq > low:
                left.append((low, seq - 1))
            low = seq + 1
        if low <= high:
            left.append((low, high))
    return left


def _whole(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _hex_digest(value: object) -> bool:
    return (
        isinstance(value, str) and len(value) == 64 and all(c in "0123456789abcdef" for c in value)
    )


def _shown(value: Any) -> str:
    """A value as stored, cut short (the caller escapes it for the terminal)."""
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
