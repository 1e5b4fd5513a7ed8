"""The auditors' question about stored alerts: which ones Sigma rules raised, newest first,
with the filters of ``sshtrail alerts`` and, for the console, the auditor's scope.

One query for the CLI, the console's alerts page and a session page's alert markers, so
the three never disagree. A scope is held to the alert's *session* row (as the sessions
list holds it): an alert is seen by a scoped auditor only once its session is stored and
in scope, whatever the alert's own operator and target columns say.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, or_, select
from sqlalchemy.engine import Connection

from sshtrail.scope import Scope
from sshtrail.tables import ALERTS, SESSIONS

#: Sigma's levels, lowest first (a rule without one is stored with ``""``).
LEVELS = ("informational", "low", "medium", "high", "critical")


@dataclass(frozen=True, slots=True)
class AlertFilter:
    since: dt.datetime | None = None
    #: One of :data:`LEVELS`, exactly (as ``--level``).
    level: str | None = None
    #: The rule's id or its title.
    rule: str | None = None
    operator: str | None = None
    target: str | None = None
    session_id: uuid.UUID | None = None
    limit: int = 100
    #: Only alerts of sessions an auditor may see (the web console).
    scope: Scope | None = None


def list_alerts(conn: Connection, wanted: AlertFilter) -> list[dict[str, Any]]:
    """Alerts newest first (the time of their command's Enter), as column mappings."""
    texts = (wanted.level, wanted.rule, wanted.operator, wanted.target)
    if any(text is not None and "\x00" in text for text in texts):
        return []  # no stored text holds a NUL (PostgreSQL refuses one even to compare)
    query: Select[Any] = select(ALERTS)
    if wanted.scope is not None and not wanted.scope.everything:
        query = query.select_from(
            ALERTS.join(SESSIONS, SESSIONS.c.id == ALERTS.c.session_id)
        ).where(wanted.scope.condition(conn.dialect.name, SESSIONS.c.operator, SESSIONS.c.target))
    if wanted.session_id is not None:
        query = query.where(ALERTS.c.session_id == wanted.session_id)
    if wanted.since is not None:
        query = query.where(ALERTS.c.at >= wanted.since)
    if wanted.level is not None:
        query = query.where(ALERTS.c.level == wanted.level)
    if wanted.rule is not None:
        query = query.where(or_(ALERTS.c.rule_id == wanted.rule, ALERTS.c.title == wanted.rule))
    if wanted.operator is not None:
        query = query.where(ALERTS.c.operator == wanted.operator)
    if wanted.target is not None:
        query = query.where(ALERTS.c.target == wanted.target)
    query = query.order_by(ALERTS.c.at.desc(), ALERTS.c.id).limit(wanted.limit)
    return [dict(row) for row in conn.execute(query).mappings()]
