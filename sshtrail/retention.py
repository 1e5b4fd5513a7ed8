"""Retention rules as the store applies them: which rule keeps a session, and until when.

A rule covers the sessions whose operator and target match its patterns
(:class:`~sshtrail.scope.Scope`); of the rules covering a session, the longest
``keep`` wins, and a session no rule covers is kept forever. ``keep`` counts
from the session's end (its last chunk, for one the store marked ended); an
active session is never due. ``delete_after``, when given, is when deletion
becomes required: ``retention show`` names sessions past it as overdue.

A due session that a legal hold names (sshtrail/holds.py) is not deleted; the
plan lists it as held. What deletes is ``consumer/deletion.py``, on this plan.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import (
    ColumnElement,
    and_,
    case,
    false,
    func,
    not_,
    or_,
    select,
    true,
    type_coerce,
)
from sqlalchemy.engine import Connection

from sshtrail import holds
from sshtrail.dbtypes import UTCDateTime
from sshtrail.durations import parse_duration
from sshtrail.scope import Scope
from sshtrail.settings import Settings
from sshtrail.states import SessionStatus
from sshtrail.tables import SESSIONS

#: The session columns a plan reads.
_COLUMNS = (
    SESSIONS.c.id,
    SESSIONS.c.operator,
    SESSIONS.c.target,
    SESSIONS.c.started_at,
    SESSIONS.c.ended_at,
    SESSIONS.c.last_chunk_at,
    SESSIONS.c.status,
    SESSIONS.c.bytes_in,
    SESSIONS.c.bytes_out,
)


@dataclass(frozen=True, slots=True)
class Rule:
    name: str
    scope: Scope
    keep: dt.timedelta
    delete_after: dt.timedelta | None


@dataclass(frozen=True, slots=True)
class Due:
    """A session whose rule's ``keep`` has passed at the plan's time."""

    session: Mapping[str, Any]
    rule: Rule
    ended: dt.datetime
    held_by: list[str] = field(default_factory=list)

    @property
    def due_at(self) -> dt.datetime:
        return self.ended + self.rule.keep

    def overdue(self, at: dt.datetime) -> bool:
        """Past ``delete_after``: its deletion is required, not just allowed."""
        limit = self.rule.delete_after or self.rule.keep
        return self.ended + limit <= at


def rules(settings: Settings) -> list[Rule]:
    return [
        Rule(
            rule.name,
            Scope(tuple(rule.operators), tuple(rule.targets)),
            parse_duration(rule.keep),
            parse_duration(rule.delete_after) if rule.delete_after else None,
        )
        for rule in settings.retention.rule
    ]


def rule_for(found: Sequence[Rule], operator: str | None, target: str | None) -> Rule | None:
    """The rule that decides a session's retention: the longest ``keep`` covering it."""
    covering = [rule for rule in found if rule.scope.allows(operator, target)]
    return max(covering, key=lambda rule: rule.keep, default=None)


def ended(session: Mapping[str, Any]) -> dt.datetime | None:
    """When retention counts from: the end, or the last chunk of an ended session."""
    if session["status"] == SessionStatus.ACTIVE:
        return None
    found: dt.datetime | None = session["ended_at"] or session["last_chunk_at"]
    return found


def _ended_column() -> Any:
    return func.coalesce(SESSIONS.c.ended_at, SESSIONS.c.last_chunk_at)


def plan(
    conn: Connection, found: Sequence[Rule], at: dt.datetime, limit: int | None = None
) -> list[Due]:
    """The sessions due for deletion at ``at``, oldest end first. Without ``limit`` (what
    ``retention plan`` lists), held ones too, with their holds; with it (what the store
    group deletes), at most ``limit`` sessions no hold names.

    One query per rule, each asking only for the sessions that rule decides (in its
    scope, in no longer rule's) that ended before its ``keep``: a store of a year
    under a 90-day rule reads what is due, not the nine months that are not."""
    if not found:
        return []
    active_holds = holds.active(conn)
    dialect = conn.dialect.name
    due: dict[uuid.UUID, Due] = {}
    for rule in found:
        cutoff = at - rule.keep
        longer = [other for other in found if other.keep > rule.keep]
        query = select(*_COLUMNS).where(
            SESSIONS.c.status != SessionStatus.ACTIVE,
            # started <= ended: a condition the index on started_at answers
            or_(SESSIONS.c.started_at <= cutoff, SESSIONS.c.started_at.is_(None)),
            _ended_column() <= cutoff,
            rule.scope.condition(dialect, SESSIONS.c.operator, SESSIONS.c.target),
            *(
                not_(other.scope.condition(dialect, SESSIONS.c.operator, SESSIONS.c.target))
                for other in longer
            ),
        )
        if limit is not None:
            if active_holds:
                query = query.where(not_(or_(*(_held(hold) for hold in active_holds))))
            query = query.order_by(_ended_column(), SESSIONS.c.id).limit(limit)
        for row in conn.execute(query).mappings():
            session = dict(row)
            decided = rule_for(found, session["operator"], session["target"])
            end = ended(session)
            if decided is None or end is None or end + decided.keep > at:
                continue
            due[session["id"]] = Due(session, decided, end, holds.holding(active_holds, session))
    ordered = sorted(due.values(), key=lambda item: (item.ended, item.session["id"]))
    if limit is None:
        return ordered
    return [item for item in ordered if not item.held_by][:limit]


def _held(hold: Mapping[str, Any]) -> ColumnElement[bool]:
    """The sessions ``hold`` names, as SQL (what :func:`sshtrail.holds.covers` says)."""
    if hold["session_id"] is not None:
        one: ColumnElement[bool] = SESSIONS.c.id == hold["session_id"]
        return one
    conditions: list[ColumnElement[bool]] = []
    if hold["operator"] is not None:
        conditions.append(SESSIONS.c.operator == hold["operator"])
    if hold["target"] is not None:
        conditions.append(SESSIONS.c.target == hold["target"])
    if hold["since"] is not None:
        conditions.append(SESSIONS.c.started_at >= hold["since"])
    if hold["until"] is not None:
        conditions.append(SESSIONS.c.started_at <= hold["until"])
    return and_(*conditions) if conditions else true()


@dataclass(slots=True)
class Coverage:
    """What one rule covers now (``retention show``)."""

    rule: Rule | None
    sessions: int = 0
    bytes: int = 0
    due: int = 0
    overdue: int = 0
    held: int = 0
    next_due: dt.datetime | None = None


def coverage(conn: Connection, found: Sequence[Rule], at: dt.datetime) -> list[Coverage]:
    """Per rule, the sessions it decides, their bytes, how many are due (and overdue,
    and held), and when the next deletion falls due; last, what no rule covers.

    One query over the ended sessions, grouped by (operator, target): which rule
    decides a session depends on those two alone, so the globs are matched in Python
    on the groups -- a few thousand for a year of a large site, not millions of rows
    -- exactly as :func:`rule_for` matches them. What depends on a session's end is
    counted in SQL against each rule's cutoff, a column set per keep and
    delete_after, and each group takes the columns of its own rule."""
    by_name: dict[str | None, Coverage] = {rule.name: Coverage(rule) for rule in found}
    by_name[None] = Coverage(None)
    active_holds = holds.active(conn)
    held = (
        func.coalesce(or_(*(_held(hold) for hold in active_holds)), false())
        if active_holds
        else None
    )
    end = _ended_column()
    columns: list[Any] = [
        SESSIONS.c.operator,
        SESSIONS.c.target,
        func.count().label("sessions"),
        func.coalesce(func.sum(SESSIONS.c.bytes_in + SESSIONS.c.bytes_out), 0).label("bytes"),
    ]
    # Rules of the same keep and delete_after count alike: one column set for them all.
    periods = list(dict.fromkeys((rule.keep, rule.delete_after) for rule in found))
    for i, period in enumerate(periods):
        columns += _counted(i, period, end, held, at)
    query = (
        select(*columns)
        .where(SESSIONS.c.status != SessionStatus.ACTIVE)
        .group_by(SESSIONS.c.operator, SESSIONS.c.target)
    )
    index = {rule.name: periods.index((rule.keep, rule.delete_after)) for rule in found}
    for group in conn.execute(query).mappings():
        decided = rule_for(found, group["operator"], group["target"])
        entry = by_name[decided.name if decided else None]
        entry.sessions += group["sessions"]
        entry.bytes += int(group["bytes"])
        if decided is None:
            continue
        i = index[decided.name]
        due = int(group[f"due_{i}"] or 0)
        entry.due += due
        entry.overdue += int(group.get(f"overdue_{i}", due) or 0)
        entry.held += int(group.get(f"held_{i}", 0) or 0)
        first: dt.datetime | None = group[f"next_{i}"]
        if first is not None:
            due_at = first + decided.keep
            if entry.next_due is None or due_at < entry.next_due:
                entry.next_due = due_at
    return list(by_name.values())


def _counted(
    i: int,
    period: tuple[dt.timedelta, dt.timedelta | None],
    end: Any,
    held: ColumnElement[bool] | None,
    at: dt.datetime,
) -> list[Any]:
    """The columns of period ``i`` in :func:`coverage`'s query: as if every session of
    the group were decided by a rule of this ``period``, its ``keep`` and
    ``delete_after`` (a group decided by another ignores them).

    A due session is held or not; one not held is overdue past ``delete_after``
    (:meth:`Due.overdue`); the earliest end not yet due gives the next deletion."""
    keep, delete_after = period
    cutoff = at - keep
    due = end <= cutoff
    free = not_(held) if held is not None else true()
    columns: list[Any] = [
        func.sum(case((and_(due, free), 1), else_=0)).label(f"due_{i}"),
        type_coerce(func.min(case((end > cutoff, end), else_=None)), UTCDateTime()).label(
            f"next_{i}"
        ),
    ]
    # Each column costs a comparison per session: only those that can differ from due.
    if delete_after is not None and delete_after > keep:
        overdue = and_(due, free, end <= at - delete_after)
        columns.append(func.sum(case((overdue, 1), else_=0)).label(f"overdue_{i}"))
    if held is not None:
        columns.append(func.sum(case((and_(due, held), 1), else_=0)).label(f"held_{i}"))
    return columns
