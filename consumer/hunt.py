"""Hunting in history: Sigma rules run over stored sessions, as the alert group would have.

Each stored session is read as the live group reads it (:class:`AlertSession`: the
shared command reader, the same events, the same evaluator), from its chunks in the
store in seq order. Memory stays bounded whatever the store holds: sessions are listed
:data:`PAGE` at a time (by id, which is time-ordered) and each session's chunks are
streamed (:func:`sshtrail.queries.chunk_stream`), one session's reader alive at a time.
A hit is the alert row the group would have stored -- the same id -- but nothing is
written: the caller only reads.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, func, or_, select
from sqlalchemy.engine import Connection

from consumer.alertsession import AlertSession
from sshtrail import queries
from sshtrail.errors import WireError
from sshtrail.sigmarules import RuleSet
from sshtrail.tables import SESSIONS
from sshtrail.wire import decode_chunk

log = logging.getLogger(__name__)

#: Sessions listed per query.
PAGE = 256


@dataclass(frozen=True, slots=True)
class HuntFilter:
    """Which stored sessions to read, and from when on their commands count."""

    operator: str | None = None
    target: str | None = None
    session_id: uuid.UUID | None = None
    #: Only commands run at or after this (sessions still going then are read whole).
    since: dt.datetime | None = None


def hunt(conn: Connection, rules: RuleSet, wanted: HuntFilter) -> Iterator[dict[str, Any]]:
    """The alerts ``rules`` raise on the stored sessions ``wanted`` names, session by
    session (oldest first), each an ``alerts`` row (id, rule, session, command...)."""
    for session_id, operator, target, user in _sessions(conn, wanted):
        for hit in _read(conn, session_id, (operator, target, user), rules):
            if wanted.since is None or hit["at"] >= wanted.since:
                yield hit


def _sessions(conn: Connection, wanted: HuntFilter) -> Iterator[tuple[Any, ...]]:
    """(id, operator, target, account) of each session to read, a page at a time."""
    query: Select[Any] = select(
        SESSIONS.c.id, SESSIONS.c.operator, SESSIONS.c.target, SESSIONS.c.target_user
    )
    if wanted.session_id is not None:
        query = query.where(SESSIONS.c.id == wanted.session_id)
    if wanted.operator is not None:
        query = query.where(SESSIONS.c.operator == wanted.operator)
    if wanted.target is not None:
        query = query.where(SESSIONS.c.target == wanted.target)
    if wanted.since is not None:
        # Still going at ``since``: not ended before it (or with no end nor chunk time).
        last = func.coalesce(SESSIONS.c.ended_at, SESSIONS.c.last_chunk_at)
        query = query.where(or_(last.is_(None), last >= wanted.since))
    after: uuid.UUID | None = None
    while True:
        page = query if after is None else query.where(SESSIONS.c.id > after)
        rows = conn.execute(page.order_by(SESSIONS.c.id).limit(PAGE)).all()
        yield from (tuple(row) for row in rows)
        if len(rows) < PAGE:
            return
        after = rows[-1][0]


def _read(
    conn: Connection,
    session_id: uuid.UUID,
    stored: tuple[str | None, str | None, str | None],
    rules: RuleSet,
) -> Iterator[dict[str, Any]]:
    """Every alert of one session, its chunks streamed from the store in seq order; the
    operator, target and account from the store's row until its Start is read (a
    session whose first chunks are not stored is read on, as the group does)."""
    session = AlertSession(session_id)
    session.know(*stored)
    for seq, data in queries.chunk_stream(conn, session_id):
        try:
            chunk = decode_chunk(data)
        except WireError as error:
            log.warning("session %s: chunk %d unreadable (%s): no further", session_id, seq, error)
            return
        yield from session.apply(chunk, rules)
