"""Legal holds: sessions that must not be deleted, by any path, while a hold names them.

A hold names one session, or every session of an operator, of a target, or started
within a time range (what it gives, together). A hold on one session locks its row
while it is placed, so it and a deletion of that session cannot pass each other; a
hold by operator, target or time placed while a deletion is under way in another
transaction may come a moment too late for that one session (PostgreSQL's read
committed), which its tombstone then shows. Placing and releasing are rows of
``holds`` that stay: who placed it, when, why, for which case; who released it, when
and why. Every deletion -- a retention rule's, ``sshtrail delete``'s -- asks
:func:`holding` in the transaction that deletes, so a session held by then stays.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.engine import Connection

from sshtrail.errors import InvalidError, NotFound
from sshtrail.tables import HOLDS, SESSIONS


class HoldError(InvalidError):
    """A hold that cannot be placed or released as asked."""


def place(
    conn: Connection,
    *,
    by: str,
    reason: str,
    case: str,
    at: dt.datetime,
    session_id: uuid.UUID | None = None,
    operator: str | None = None,
    target: str | None = None,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
) -> str:
    """Place a hold; its id. A hold must name something: a hold on everything is
    suspending retention, which is a settings change, not a hold."""
    if session_id is None and operator is None and target is None and since is None:
        raise HoldError("a hold names a session, an operator, a target or --since")
    if since is not None and until is not None and until < since:
        raise HoldError("--until is before --since")
    if session_id is not None:
        # The session's row locked: a deletion of it under way finishes first, and then
        # the hold is refused as too late, not placed on a tombstone.
        query = select(SESSIONS.c.id).where(SESSIONS.c.id == session_id)
        if conn.dialect.name == "postgresql":
            query = query.with_for_update()
        if conn.execute(query).first() is None:
            raise NotFound(f"session {session_id} is not stored (deleted?): no hold placed")
    hold_id = uuid.uuid4().hex
    conn.execute(
        insert(HOLDS).values(
            id=hold_id,
            placed_by=by,
            placed_at=at,
            reason=reason,
            case=case,
            session_id=session_id,
            operator=operator,
            target=target,
            since=since,
            until=until,
        )
    )
    return hold_id


def release(conn: Connection, hold_id: str, *, by: str, reason: str, at: dt.datetime) -> None:
    """Release the hold ``hold_id`` (an id or a unique prefix of one); the row stays."""
    found = conn.execute(
        select(HOLDS.c.id, HOLDS.c.released_at).where(
            HOLDS.c.id.startswith(hold_id, autoescape=True)
        )
    ).all()
    if len(found) != 1:
        raise NotFound(f"no hold {hold_id!r}" if not found else f"hold id {hold_id!r} is ambiguous")
    if found[0].released_at is not None:
        raise HoldError(f"hold {found[0].id} was already released")
    conn.execute(
        update(HOLDS)
        .where(HOLDS.c.id == found[0].id, HOLDS.c.released_at.is_(None))
        .values(released_at=at, released_by=by, release_reason=reason)
    )


def listed(conn: Connection, *, released_too: bool = True) -> list[dict[str, Any]]:
    """Holds, newest first; released ones too unless ``released_too`` is false."""
    query = select(HOLDS).order_by(HOLDS.c.placed_at.desc())
    if not released_too:
        query = query.where(HOLDS.c.released_at.is_(None))
    return [dict(row) for row in conn.execute(query).mappings()]


def active(conn: Connection) -> list[dict[str, Any]]:
    return listed(conn, released_too=False)


def covers(hold: Mapping[str, Any], session: Mapping[str, Any]) -> bool:
    """Whether ``hold`` (a row of ``holds``) names ``session`` (a row of ``sessions``)."""
    if hold["session_id"] is not None:
        return bool(hold["session_id"] == session["id"])
    if hold["operator"] is not None and hold["operator"] != session["operator"]:
        return False
    if hold["target"] is not None and hold["target"] != session["target"]:
        return False
    started = session["started_at"]
    if hold["since"] is not None and (started is None or started < hold["since"]):
        return False
    return not (hold["until"] is not None and (started is None or started > hold["until"]))


def holding(holds: Sequence[Mapping[str, Any]], session: Mapping[str, Any]) -> list[str]:
    """The ids of ``holds`` that name ``session``."""
    return [hold["id"] for hold in holds if covers(hold, session)]


def describe(hold: Mapping[str, Any]) -> str:
    """What a hold names, in a few words."""
    parts = []
    if hold["session_id"] is not None:
        parts.append(f"session {hold['session_id']}")
    if hold["operator"] is not None:
        parts.append(f"operator {hold['operator']}")
    if hold["target"] is not None:
        parts.append(f"target {hold['target']}")
    if hold["since"] is not None:
        parts.append(f"since {hold['since']:%Y-%m-%d %H:%M}")
    if hold["until"] is not None:
        parts.append(f"until {hold['until']:%Y-%m-%d %H:%M}")
    return ", ".join(parts)


def as_json(hold: Mapping[str, Any]) -> dict[str, Any]:
    """A hold as ``hold list --json`` and ``show --json`` have it."""

    def when(value: dt.datetime | None) -> str | None:
        return value.isoformat() if value is not None else None

    return {
        "id": hold["id"],
        "session": str(hold["session_id"]) if hold["session_id"] else None,
        "operator": hold["operator"],
        "target": hold["target"],
        "since": when(hold["since"]),
        "until": when(hold["until"]),
        "case": hold["case"],
        "reason": hold["reason"],
        "placed_by": hold["placed_by"],
        "placed_at": when(hold["placed_at"]),
        "released_at": when(hold["released_at"]),
        "released_by": hold["released_by"],
        "release_reason": hold["release_reason"],
    }


def line(hold: Mapping[str, Any]) -> str:
    """A hold in one line, for ``show``: its id, case, who placed it and why, and its
    release if it was released."""
    text = (
        f"{hold['id'][:12]} case {hold['case']}, by {hold['placed_by']} at "
        f"{hold['placed_at']:%Y-%m-%d %H:%M} UTC: {hold['reason']}"
    )
    if hold["released_at"] is not None:
        text += (
            f" (released {hold['released_at']:%Y-%m-%d %H:%M} UTC by {hold['released_by']}: "
            f"{hold['release_reason']})"
        )
    return text
