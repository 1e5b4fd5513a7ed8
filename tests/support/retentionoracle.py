"""What each retention rule covers, found session by session in Python.

The plain reading of the rules, and so the oracle of ``retention.coverage``
(which counts in SQL, grouped by operator and target): the test compares the
two, and ``bench/retention_show.py`` times the SQL against this.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sshtrail import holds, retention
from sshtrail.states import SessionStatus


def one_by_one(
    sessions: Iterable[Mapping[str, Any]],
    rules: Sequence[retention.Rule],
    active: Sequence[Mapping[str, Any]],
    at: dt.datetime,
) -> list[retention.Coverage]:
    """Each rule's coverage (then the sessions no rule covers), every ended session
    read: its rule and due time found here, its holds among ``active``."""
    found = {rule.name: retention.Coverage(rule) for rule in rules}
    nobody = retention.Coverage(None)
    for row in sessions:
        session = dict(row)
        if session["status"] == SessionStatus.ACTIVE:
            continue
        rule = retention.rule_for(rules, session["operator"], session["target"])
        entry = found[rule.name] if rule else nobody
        entry.sessions += 1
        entry.bytes += session["bytes_in"] + session["bytes_out"]
        end = retention.ended(session)
        if rule is None or end is None:
            continue
        item = retention.Due(session, rule, end)
        if item.due_at > at:
            if entry.next_due is None or item.due_at < entry.next_due:
                entry.next_due = item.due_at
        elif holds.holding(active, session):
            entry.held += 1
        else:
            entry.due += 1
            entry.overdue += item.overdue(at)
    return [*found.values(), nobody]
