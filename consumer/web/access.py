"""The access log: every look an auditor took, in the store (``access_log``, migration 0005).

Written before the answer is sent: a view that could not be logged is not
shown (the console answers 503), so the log never misses what was seen.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, select
from sqlalchemy.engine import Connection

from sshtrail.tables import ACCESS_LOG

#: The actions written, in the order docs/operations.md explains them.
ACTIONS = (
    "login",
    "login-failed",
    "login-refused",
    "logout",
    "sessions",
    "view",
    "replay",
    "search",
    "export",
    "watch",
    "terminate",
    "lock",
    "unlock",
    "lag",
    "access-log",
    "denied",
)
DETAIL_MAX = 2048


@dataclass(frozen=True, slots=True)
class Entry:
    at: dt.datetime
    auditor: str
    action: str
    address: str
    session_id: uuid.UUID | None
    detail: str


def record(
    engine: Engine,
    auditor: str,
    action: str,
    address: str,
    *,
    session_id: uuid.UUID | None = None,
    detail: str = "",
) -> None:
    assert action in ACTIONS, action
    with engine.begin() as conn:
        conn.execute(
            ACCESS_LOG.insert().values(
                at=dt.datetime.now(dt.UTC),
                auditor=auditor[:128],
                action=action,
                address=address[:64],
                session_id=session_id,
                detail=detail[:DETAIL_MAX],
            )
        )


def entries(
    conn: Connection,
    *,
    auditor: str | None = None,
    session_id: uuid.UUID | None = None,
    action: str | None = None,
    since: dt.datetime | None = None,
    limit: int = 100,
    offset: int = 0,
) -> list[Entry]:
    """Newest first."""
    query = select(
        ACCESS_LOG.c.at,
        ACCESS_LOG.c.auditor,
        ACCESS_LOG.c.action,
        ACCESS_LOG.c.address,
        ACCESS_LOG.c.session_id,
        ACCESS_LOG.c.detail,
    )
    conditions: list[Any] = []
    if auditor is not None:
        conditions.append(ACCESS_LOG.c.auditor == auditor)
    if session_id is not None:
        conditions.append(ACCESS_LOG.c.session_id == session_id)
    if action is not None:
        conditions.append(ACCESS_LOG.c.action == action)
    if since is not None:
        conditions.append(ACCESS_LOG.c.at >= since)
    query = query.where(*conditions).order_by(ACCESS_LOG.c.at.desc(), ACCESS_LOG.c.id.desc())
    return [Entry(*row) for row in conn.execute(query.limit(limit).offset(offset))]


def as_json(entry: Entry) -> dict[str, Any]:
    return {
        "at": entry.at.isoformat(),
        "auditor": entry.auditor,
        "action": entry.action,
        "address": entry.address,
        "session": str(entry.session_id) if entry.session_id else None,
        "detail": entry.detail,
    }
