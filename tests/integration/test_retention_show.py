"""``retention show``'s figures from SQL, against the rules applied to each session one by
one, on real SQLite and PostgreSQL: many sessions, ties, holds, names LIKE would misread."""

from __future__ import annotations

import datetime as dt
import random
import uuid
from typing import Any

import pytest
from sqlalchemy import Engine, select

from sshtrail import holds, retention
from sshtrail.scope import Scope
from sshtrail.states import SessionStatus
from sshtrail.tables import SESSIONS
from tests.support.retentionoracle import one_by_one

pytestmark = pytest.mark.integration

AT = dt.datetime(2026, 6, 1, tzinfo=dt.UTC)
DAY = dt.timedelta(days=1)
RULES = [
    retention.Rule("ops", Scope(("ops-*",), ("*",)), 30 * DAY, 60 * DAY),
    # The same keep as "ops": a session both cover is decided by the first.
    retention.Rule("db", Scope(("*",), ("db?",)), 30 * DAY, None),
    retention.Rule("long", Scope(("a_b*",), ("*",)), 365 * DAY, None),
    retention.Rule("short", Scope(("*",), ("web1", "web?2")), 7 * DAY, 10 * DAY),
]
OPERATORS = ["ops-1", "ops-2", "a_b", "a_bc", "axb", "a%b", "carol", None]
TARGETS = ["db1", "db22", "web1", "web3", "wex2", "t", None]


def test_show_counts_in_sql_what_the_rules_say_of_each_session(store_engine: Engine) -> None:
    chosen = random.Random(31)
    sessions: list[dict[str, Any]] = []
    for _ in range(3000):
        ended_days = chosen.uniform(0, 400)
        ended = AT - dt.timedelta(days=ended_days, microseconds=chosen.randrange(10**6))
        status = chosen.choice(
            [SessionStatus.CLOSED] * 6 + [SessionStatus.ACTIVE, SessionStatus.QUARANTINED]
        )
        no_end = chosen.random() < 0.05
        sessions.append(
            {
                "id": uuid.uuid4(),
                "operator": chosen.choice(OPERATORS),
                "target": chosen.choice(TARGETS),
                "started_at": None if chosen.random() < 0.03 else ended - dt.timedelta(hours=1),
                "ended_at": None if no_end or chosen.random() < 0.2 else ended,
                "last_chunk_at": None if no_end else ended,
                "status": status,
                "request": "shell",
                "bytes_in": chosen.randrange(10**6),
                "bytes_out": chosen.randrange(10**9),
                "chunk_count": 1,
                "gaps": [],
            }
        )
    # Exactly on a cutoff: due (keep counts to the microsecond).
    sessions[0].update(operator="ops-1", status=SessionStatus.CLOSED, ended_at=AT - 30 * DAY)
    with store_engine.begin() as conn:
        conn.execute(SESSIONS.insert(), sessions)
        sid = sessions[1]["id"]
        assert isinstance(sid, uuid.UUID)
        holds.place(conn, session_id=sid, by="t", reason="r", case="C-1", at=AT)
        holds.place(conn, operator="ops-2", target="db1", by="t", reason="r", case="C-2", at=AT)
        since, until = AT - 200 * DAY, AT - 150 * DAY
        holds.place(conn, since=since, until=until, by="t", reason="r", case="C-3", at=AT)
    with store_engine.connect() as conn:
        active = holds.active(conn)
        stored = [dict(row) for row in conn.execute(select(SESSIONS)).mappings()]
        shown = retention.coverage(conn, RULES, AT)
    assert shown == one_by_one(stored, RULES, active, AT)
    assert sum(entry.held for entry in shown) > 0
    assert all(entry.sessions for entry in shown)


def test_show_with_no_rules_counts_everything_as_kept_forever(store_engine: Engine) -> None:
    with store_engine.begin() as conn:
        conn.execute(
            SESSIONS.insert(),
            [
                {
                    "id": uuid.uuid4(),
                    "operator": "alice",
                    "target": "t",
                    "ended_at": AT - n * DAY,
                    "status": SessionStatus.CLOSED,
                    "bytes_in": n,
                    "bytes_out": 1,
                    "chunk_count": 1,
                    "gaps": [],
                }
                for n in range(5)
            ],
        )
    with store_engine.connect() as conn:
        shown = retention.coverage(conn, [], AT)
        empty = retention.coverage(conn, RULES[:1], AT + 3650 * DAY)
    assert shown == [retention.Coverage(None, sessions=5, bytes=15)]
    assert empty[0] == retention.Coverage(RULES[0])
