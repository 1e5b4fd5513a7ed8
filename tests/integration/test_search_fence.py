"""When a search on PostgreSQL finds its matches first (the fence) and when it lets the
planner walk the ``at`` index in time order: plans and answers on a filled index."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator

import psycopg
import pytest
from sqlalchemy import Engine

from sshtrail import search
from sshtrail.db import make_engine
from sshtrail.ids import uuid7
from sshtrail.search import Query
from tests.support import postgres

pytestmark = pytest.mark.integration

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
#: One line every 40 s for 46 days; one in 20 holds the common word, three the rare one.
LINES = 100_000
STEP = dt.timedelta(seconds=40)
RARE = "zqxjvk"
RARE_AT = (7_001, 50_001, 93_001)


def line(number: int) -> str:
    text = f"systemctl status unit{number % 97} {number}"
    if number % 20 == 0:
        text += " error: failed"
    if number in RARE_AT:
        text += f" {RARE}"
    return text


@pytest.fixture(scope="module")
def index() -> Iterator[Engine]:
    """An index of :data:`LINES` lines, filled by COPY and analyzed, as a busy site's
    (partitioned by the month its sessions started in, sshtrail/searchmonths.py)."""
    with postgres.fresh_database() as url:
        engine = make_engine(url)
        search.ensure_schema(engine)
        dsn = url.replace("postgresql+psycopg", "postgresql")
        with (
            psycopg.connect(dsn) as conn,
            conn.cursor().copy(
                "COPY search_docs (session_id, kind, ordinal, seq, t, at, operator, target, "
                "text) FROM STDIN"
            ) as rows,
        ):
            for number in range(LINES):
                at = T0 + number * STEP
                if number % 40 == 0:  # a session every 40 lines, in its month's partition
                    session = uuid7(int(at.timestamp() * 1000))
                kind = "command" if number % 2 == 0 else "output"
                rows.write_row(
                    (session, kind, number % 40, 0, 0, at, "alice", "db01", line(number))
                )
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("VACUUM ANALYZE search_docs")
        yield engine
        engine.dispose()


def plan(engine: Engine, query: Query) -> str:
    with engine.connect() as conn:
        compiled = search.statement(conn, query).compile(conn)
        return "\n".join(conn.exec_driver_sql(f"EXPLAIN {compiled}", compiled.params).scalars())


def expected(query: Query) -> list[str]:
    """The lines ``query`` must find, oldest first, computed here."""
    wanted = []
    for number in range(LINES):
        at = T0 + number * STEP
        if query.since is not None and at < query.since:
            continue
        if query.until is not None and at >= query.until:
            continue
        if query.text.lower() in line(number).lower():
            wanted.append(line(number))
    return wanted[: query.limit]


def found(engine: Engine, query: Query, fence: bool | None = None) -> list[str]:
    with engine.connect() as conn:
        return [hit.text for hit in search.search(conn, query, fence)]


def test_a_common_word_within_a_week_is_read_in_time_order(index: Engine) -> None:
    """No fence: the planner walks the week's ``at`` index and stops at the 100th match
    (1.9 ms over a year's 10 M lines, 110 ms fenced: docs/performance.md)."""
    since = T0 + dt.timedelta(days=20)
    query = Query("error", since=since, until=since + dt.timedelta(days=7))
    shown = plan(index, query)
    assert "CTE Scan" not in shown
    assert re.search(r"Index Scan using \S*_at\S* on search_docs", shown)
    assert found(index, query) == expected(query) == found(index, query, fence=True)
    assert len(expected(query)) == 100


def test_since_alone_bounds_the_range_up_to_now(index: Engine) -> None:
    since = T0 + dt.timedelta(days=40)
    query = Query("error", since=since)
    assert not search.fenced(query, now=since + dt.timedelta(days=7))
    assert search.fenced(query, now=since + search.UNFENCED_SPAN + dt.timedelta(seconds=1))
    assert found(index, query) == expected(query)


@pytest.mark.parametrize(
    "bounds",
    [
        {},
        {"until": T0 + dt.timedelta(days=30)},
        {"since": T0, "until": T0 + search.UNFENCED_SPAN + dt.timedelta(days=1)},
    ],
    ids=["no range", "until alone", "longer than the span"],
)
def test_a_rare_word_beyond_a_short_range_is_found_through_the_trigram_index(
    index: Engine, bounds: dict[str, dt.datetime]
) -> None:
    """Fenced: the planner cannot walk a whole year's ``at`` index for a word it takes
    for common; the matches come from the trigram index, then are ordered."""
    query = Query(RARE, **bounds)  # type: ignore[arg-type]
    assert search.fenced(query)
    shown = plan(index, query)
    assert "CTE Scan on matches" in shown
    assert re.search(r"Bitmap Index Scan on \S*text\S*", shown)
    assert found(index, query) == expected(query)
    assert found(index, query) == found(index, query, fence=False)


def test_a_rare_word_within_a_week_is_found_either_way(index: Engine) -> None:
    since = T0 + dt.timedelta(days=37)
    query = Query(RARE, since=since, until=since + dt.timedelta(days=7))
    assert not search.fenced(query)
    assert found(index, query) == expected(query) == [line(RARE_AT[2])]
