"""The auditors' questions to the store: which sessions, which one, what it holds.

Session ids are UUIDv7, whose leading digits are a timestamp: sessions
started close together share long prefixes. So a short id is the shortest
prefix (at least :data:`MIN_PREFIX` hex digits) that no other stored session
shares, and any unique prefix, with or without dashes, names a session.

:data:`MIN_PREFIX` is 12: the whole millisecond of the session's start. Eight
digits (git's length) hold only the timestamp's top 32 bits, which change
every 65.5 s: a short id printed a minute ago was ambiguous once another
session started in the same window. Twelve stay unique unless another
session starts in the very same millisecond.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import (
    ColumnElement,
    Text,
    cast,
    column,
    false,
    func,
    literal,
    or_,
    select,
    values,
)
from sqlalchemy.engine import Connection, RowMapping
from sqlalchemy.sql import Select

from sshtrail.errors import NotFound
from sshtrail.scope import Scope
from sshtrail.seqranges import MAX_TEXT, read_gaps
from sshtrail.states import ANY_FLAG, MaskedInput, PolicyMark, SessionFlag, SessionStatus
from sshtrail.tables import CHUNKS, REFUSED_CHUNKS, SESSIONS
from sshtrail.textsafe import local_time, visible

__all__ = ["NotFound"]  # raised here; defined with the other errors

MIN_PREFIX = 12
#: Sessions an ambiguous prefix lists.
AMBIGUOUS_SHOWN = 10


@dataclass(frozen=True, slots=True)
class SessionFilter:
    operator: str | None = None
    target: str | None = None
    status: SessionStatus | None = None
    since: dt.datetime | None = None
    until: dt.datetime | None = None
    limit: int = 50
    #: ``masked``: sessions with any masked input; ``suspicious``: only those marked so.
    masked_input: MaskedInput | None = None
    #: Only sessions an auditor may see (the web console).
    scope: Scope | None = None
    #: Rows skipped first (pages of the web console).
    offset: int = 0
    #: One of :data:`SORTS`; newest first unless ``ascending``.
    sort: str = "started"
    ascending: bool = False
    #: Only sessions whose stored verification is not "ok" (or was undone by a
    #: change to their chunks): where tampered sessions are to be found.
    unverified: bool = False
    #: Sessions whose strongest command-policy mark is this one or stronger
    #: (``warned`` < ``reviewed`` < ``rejected``, :meth:`PolicyMark.at_least`).
    policy: PolicyMark | None = None
    #: Sessions with this flag (docs/recording.md, "Flags"), or with any (:data:`ANY_FLAG`).
    flag: SessionFlag | Literal["any"] | None = None
    #: The sessions the search index flags ``uncertain-prompt``, which the store does not
    #: keep (looked up by :func:`sshtrail.promptflag.list_sessions`).
    index_flagged: frozenset[uuid.UUID] = frozenset()


#: What sessions can be ordered by, and the columns that order them.
SORTS = {
    "started": ("started_at",),
    "operator": ("operator", "started_at"),
    "target": ("target", "started_at"),
    "status": ("status", "started_at"),
    "duration": ("ended_at", "started_at"),
}


def list_sessions(conn: Connection, wanted: SessionFilter) -> list[dict[str, Any]]:
    """Sessions newest first (or as ``wanted.sort`` says), as column mappings."""
    query = _session_rows()
    if wanted.scope is not None and not wanted.scope.everything:
        query = query.where(
            wanted.scope.condition(conn.dialect.name, SESSIONS.c.operator, SESSIONS.c.target)
        )
    if wanted.operator is not None:
        query = query.where(SESSIONS.c.operator == wanted.operator)
    if wanted.target is not None:
        query = query.where(SESSIONS.c.target == wanted.target)
    if wanted.status is not None:
        query = query.where(SESSIONS.c.status == wanted.status)
    if wanted.since is not None:
        query = query.where(SESSIONS.c.started_at >= wanted.since)
    if wanted.until is not None:
        query = query.where(SESSIONS.c.started_at < wanted.until)
    if wanted.masked_input is not None:
        query = query.where(SESSIONS.c.masked_input.in_(wanted.masked_input.at_least()))
    if wanted.policy is not None:
        query = query.where(SESSIONS.c.policy.in_(wanted.policy.at_least()))
    if wanted.flag is not None:
        query = query.where(flagged(wanted.flag, wanted.index_flagged))
    if wanted.unverified:
        query = query.where(or_(SESSIONS.c.verified.is_(None), SESSIONS.c.verified.is_(False)))
    if wanted.sort not in SORTS:
        raise ValueError(f"cannot sort sessions by {wanted.sort!r}")
    columns = [SESSIONS.c[name] for name in SORTS[wanted.sort]] + [SESSIONS.c.id]
    query = query.order_by(*(c.asc() if wanted.ascending else c.desc() for c in columns))
    query = query.limit(wanted.limit).offset(wanted.offset)
    return [_with_gaps(row) for row in conn.execute(query).mappings()]


def flagged(
    flag: SessionFlag | Literal["any"], index_flagged: frozenset[uuid.UUID] = frozenset()
) -> ColumnElement[bool]:
    """Sessions with ``flag`` among their ``flags`` (sorted, comma-separated names), or,
    for ``uncertain-prompt``, among ``index_flagged``."""
    in_index = SESSIONS.c.id.in_(sorted(index_flagged)) if index_flagged else false()
    if flag == ANY_FLAG:
        return or_(SESSIONS.c.flags.is_not(None), in_index)
    if flag == SessionFlag.UNCERTAIN_PROMPT:
        return in_index
    return (literal(",") + SESSIONS.c.flags + literal(",")).contains(f",{flag},")


def _session_rows() -> Select[Any]:
    """Every column of ``sessions``, ``gaps`` as at most :data:`MAX_TEXT` characters of
    its text and the text's length: whatever a database writer put there is read in
    bounded memory, and read as JSON only here (:func:`_with_gaps`)."""
    text = cast(SESSIONS.c.gaps, Text)
    return select(
        *(column for column in SESSIONS.c if column.name != "gaps"),
        func.substr(text, 1, MAX_TEXT + 1).label("gaps"),
        func.length(text).label("gaps_length"),
    )


def _with_gaps(row: RowMapping) -> dict[str, Any]:
    """A session row with ``gaps`` as :class:`~sshtrail.seqranges.Gaps`."""
    result = dict(row)
    result["gaps"] = read_gaps(result["gaps"], result.pop("gaps_length"), result["last_seq"])
    return result


def short_ids(conn: Connection, ids: list[uuid.UUID]) -> dict[uuid.UUID, str]:
    """The shortest unique prefix of each id among all stored sessions.

    One query for the whole list (each id's neighbours below and above it, as
    correlated subqueries): a partitioned store plans a query over every month,
    so asking twice per listed row cost more than the listing itself."""
    if not ids:
        return {}
    listed = (
        values(column("id", SESSIONS.c.id.type), name="listed")
        .data([(i,) for i in ids])
        .cte("listed")  # WITH listed(id) AS (VALUES ...): SQLite has no alias column list
    )
    stored = SESSIONS.c.id

    def nearest(side: ColumnElement[bool], order: ColumnElement[Any]) -> Any:
        return select(stored).where(side).order_by(order).limit(1).scalar_subquery()

    query = select(
        listed.c.id,
        nearest(stored < listed.c.id, stored.desc()),
        nearest(stored > listed.c.id, stored.asc()),
    )
    shown = {}
    for session_id, *neighbours in conn.execute(query).all():
        hexed = session_id.hex
        longest = 0
        for neighbour in filter(None, neighbours):
            common = next(
                (i for i, (a, b) in enumerate(zip(hexed, neighbour.hex, strict=True)) if a != b), 32
            )
            longest = max(longest, common)
        shown[session_id] = hexed[: max(MIN_PREFIX, longest + 1)]
    return shown


def resolve(conn: Connection, prefix: str) -> uuid.UUID:
    """The session whose id starts with ``prefix``; :class:`NotFound` if none or several."""
    digits = prefix.strip().lower().replace("-", "")
    if not digits or len(digits) > 32 or any(c not in "0123456789abcdef" for c in digits):
        raise NotFound(f"{prefix!r} is not a session id or a prefix of one (hex digits)")
    low = uuid.UUID(digits.ljust(32, "0"))
    high = uuid.UUID(digits.ljust(32, "f"))
    shown = AMBIGUOUS_SHOWN
    query = (
        select(SESSIONS.c.id, SESSIONS.c.operator, SESSIONS.c.target, SESSIONS.c.started_at)
        .where(SESSIONS.c.id.between(low, high))
        .order_by(SESSIONS.c.id)
        .limit(shown + 1)
    )
    found = conn.execute(query).all()
    if not found:
        raise NotFound(f"no session id starts with {digits}")
    if len(found) > 1:
        more = " (and more)" if len(found) > shown else ""
        candidates = "".join(
            f"\n  {row.id.hex}  {visible(row.operator or '?')}@{visible(row.target or '?')}  "
            f"{local_time(row.started_at)}"
            for row in found[:shown]
        )
        raise NotFound(
            f"several sessions start with {digits}{more}: type more of the id{candidates}"
        )
    result: uuid.UUID = found[0].id
    return result


def session(conn: Connection, session_id: uuid.UUID) -> dict[str, Any]:
    row = conn.execute(_session_rows().where(SESSIONS.c.id == session_id)).mappings().one()
    return _with_gaps(row)


def stored_chunks(conn: Connection, session_id: uuid.UUID) -> list[tuple[int, bytes]]:
    """(seq, bytes as received) of a session, in seq order."""
    query = select(CHUNKS.c.seq, CHUNKS.c.data).where(CHUNKS.c.session_id == session_id)
    return [(seq, data) for seq, data in conn.execute(query.order_by(CHUNKS.c.seq))]


def refused_chunks(conn: Connection, session_id: uuid.UUID) -> list[RowMapping]:
    """Chunks naming this session that the store refused on arrival (no trusted gateway
    signed them): ``seq``, ``partition``, ``offset``, ``reason``, ``received_at``."""
    table = REFUSED_CHUNKS
    query = (
        select(table.c.seq, table.c.partition, table.c.offset, table.c.reason, table.c.received_at)
        .where(table.c.session_id == session_id)
        .order_by(table.c.seq, table.c.partition, table.c.offset)
    )
    return list(conn.execute(query).mappings())


def all_session_ids(conn: Connection) -> list[uuid.UUID]:
    query = select(SESSIONS.c.id).order_by(SESSIONS.c.started_at, SESSIONS.c.id)
    return list(conn.execute(query).scalars())


def chunk_stream(
    conn: Connection, session_id: uuid.UUID, batch: int = 64
) -> Iterator[tuple[int, bytes]]:
    """(seq, bytes) of a session in seq order, read ``batch`` chunks at a time: a
    recording of any size in bounded memory (the web console's player and downloads)."""
    query = select(CHUNKS.c.seq, CHUNKS.c.data).where(CHUNKS.c.session_id == session_id)
    result = conn.execution_options(yield_per=batch).execute(query.order_by(CHUNKS.c.seq))
    for seq, data in result:
        yield int(seq), bytes(data)
