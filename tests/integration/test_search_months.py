"""The search index's documents partitioned by month on PostgreSQL: made so, searched,
and a month whose every session is deleted dropped whole by the index's purge."""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, func, insert, select, text

from consumer.indexpurge import DELETED, IndexPurge, purge
from sshtrail import migrate, partitions, search, searchmonths
from sshtrail.db import make_engine
from sshtrail.ids import uuid7
from sshtrail.partitions import Month
from sshtrail.search import DOCS, SESSIONS, Query
from sshtrail.tables import DELETIONS
from tests.support import postgres

pytestmark = pytest.mark.integration

NOW = dt.datetime.now(dt.UTC)
#: Three months back: a whole month, before the current one, with its partition made.
OLD = Month.of(NOW - dt.timedelta(days=95))


@pytest.fixture
def index() -> Iterator[Engine]:
    with postgres.fresh_database() as url:
        engine = make_engine(url)
        search.ensure_schema(engine)
        yield engine
        engine.dispose()


def session_in(month: Month, day: int) -> uuid.UUID:
    return uuid7(int((month.start + dt.timedelta(days=day)).timestamp() * 1000))


def add(engine: Engine, session_id: uuid.UUID, lines: list[str]) -> None:
    started = dt.datetime.fromtimestamp((session_id.int >> 80) / 1000, dt.UTC)
    with engine.begin() as conn:
        conn.execute(
            insert(SESSIONS).values(
                session_id=session_id, next_seq=1, ended=True, started_at=started
            )
        )
        conn.execute(
            insert(DOCS),
            [
                {
                    "session_id": session_id,
                    "kind": "output",
                    "ordinal": number,
                    "seq": 0,
                    "t": number,
                    "at": started + dt.timedelta(seconds=number),
                    "text": line,
                }
                for number, line in enumerate(lines)
            ],
        )


def where(engine: Engine, session_id: uuid.UUID) -> set[str]:
    """The partitions holding the session's documents."""
    with engine.connect() as conn:
        return set(
            conn.execute(
                text(
                    "SELECT DISTINCT tableoid::regclass::text FROM search_docs "
                    "WHERE session_id = :s"
                ),
                {"s": session_id},
            ).scalars()
        )


def months(engine: Engine) -> list[Month]:
    with engine.connect() as conn:
        return partitions.months(conn, "search_docs")


def test_a_new_index_is_partitioned_by_month_of_session_start(index: Engine) -> None:
    made = months(index)
    assert Month.of(NOW) in made
    assert OLD in made
    assert len(made) == searchmonths.BEHIND + partitions.AHEAD + 1
    with index.connect() as conn:  # every partition's text sampled finely for the planner
        targets = conn.execute(
            text(
                "SELECT c.relname, a.attstattarget FROM pg_attribute a "
                "JOIN pg_class c ON c.oid = a.attrelid "
                "WHERE c.relname LIKE 'search_docs%' AND c.relkind IN ('r', 'p') "
                "AND a.attname = 'text'"
            )
        ).all()
    assert len(targets) == len(made) + 2  # the parent and DEFAULT
    assert {target for _, target in targets} == {searchmonths.TEXT_STATISTICS}
    old, current = session_in(OLD, 3), uuid7()
    add(index, old, ["make error: failed", "ls"])
    add(index, current, ["systemctl restart app: error"])
    assert where(index, old) == {OLD.name("search_docs")}
    assert where(index, current) == {Month.of(NOW).name("search_docs")}
    foreign = uuid.uuid4()  # not a UUIDv7: the DEFAULT partition takes it
    add(index, foreign, ["error in a foreign id"])
    assert where(index, foreign) == {"search_docs_default"}
    with index.connect() as conn:
        found = search.search(conn, Query("error"))
    assert {hit.session_id for hit in found} == {old, current, foreign}
    assert found[0].text == "make error: failed"


@pytest.fixture
def store() -> Iterator[Engine]:
    with postgres.fresh_database() as url:
        migrate.upgrade(url)
        engine = make_engine(url)
        yield engine
        engine.dispose()


def tombstone(store: Engine, *session_ids: uuid.UUID) -> None:
    """What the store's deletion leaves (consumer/deletion.py): all the purge reads."""
    with store.begin() as conn:
        for session_id in session_ids:
            conn.execute(
                insert(DELETIONS).values(
                    session_id=session_id,
                    deleted_at=dt.datetime.now(dt.UTC),
                    chunk_count=1,
                    byte_count=1,
                    verdict="ok",
                    deleted_by="retention",
                    reason="test",
                    body=b"{}",
                    signature=bytes(64),
                    key=bytes(32),
                )
            )


def deleted(index: Engine) -> set[uuid.UUID]:
    with index.connect() as conn:
        query = select(SESSIONS.c.session_id).where(SESSIONS.c.quarantine_reason == DELETED)
        return set(conn.execute(query).scalars())


def test_the_purge_drops_a_month_once_every_session_of_it_is_deleted(
    index: Engine, store: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("consumer.indexpurge.MONTH_RECHECK_S", 0.0)
    first, second = session_in(OLD, 2), session_in(OLD, 20)
    later = session_in(OLD.next(), 1)
    for session_id in (first, second, later):
        add(index, session_id, [f"uptime {session_id}", "error"])
    purge = IndexPurge(store, 0.0)
    tombstone(store, first)
    assert purge.run(index, lambda ids: None) is False
    assert OLD in months(index)  # the month still has a session: its rows deleted
    assert where(index, first) == set()
    assert where(index, second) == {OLD.name("search_docs")}
    tombstone(store, second)
    purge.run(index, lambda ids: None)
    assert OLD not in months(index)
    assert OLD.next() in months(index)
    assert deleted(index) == {first, second}
    with index.connect() as conn:
        assert [hit.session_id for hit in search.search(conn, Query("error"))] == [later]
        left = conn.execute(select(func.count()).select_from(DOCS)).scalar()
    assert left == 2


def test_a_month_with_a_session_left_is_looked_at_again_only_later(
    index: Engine, store: Engine
) -> None:
    """Sessions expiring one by one: their rows go at each look, their month's
    documents are not scanned again until ``MONTH_RECHECK_S`` passed."""
    first, second = session_in(OLD, 2), session_in(OLD, 20)
    for session_id in (first, second):
        add(index, session_id, ["error"])
    purge = IndexPurge(store, 0.0)
    tombstone(store, first)
    purge.run(index, lambda ids: None)
    tombstone(store, second)
    purge.run(index, lambda ids: None)
    assert OLD in months(index)  # not looked at again yet
    assert where(index, second) == set()
    assert deleted(index) == {first, second}


def test_a_month_deleted_at_once_goes_whole_on_its_first_page(
    index: Engine, store: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Retention drops a month's sessions in one transaction: the purge's first page of
    them (one tombstone here) finds every one deleted and drops the partition."""
    monkeypatch.setattr("consumer.indexpurge.PAGE", 1)
    sessions = [session_in(OLD, day) for day in (1, 9, 17)]
    for session_id in sessions:
        add(index, session_id, ["error"])
    tombstone(store, *sessions)
    forgotten: list[uuid.UUID] = []
    assert IndexPurge(store, 0.0).run(index, forgotten.extend) is True  # more pages wait
    assert len(forgotten) == 1
    assert OLD not in months(index)
    assert deleted(index) == set(sessions)
    with index.connect() as conn:
        assert search.search(conn, Query("error")) == []


def test_a_month_with_rows_in_default_is_not_made(index: Engine) -> None:
    ahead = Month.of(NOW)
    for _ in range(partitions.AHEAD + 1):
        ahead = ahead.next()
    stray = session_in(ahead, 1)
    add(index, stray, ["early"])
    assert where(index, stray) == {"search_docs_default"}
    with index.begin() as conn:
        assert searchmonths.ensure_months(conn, ahead.start, ahead=1) == [
            ahead.next().name("search_docs")
        ]
    assert ahead not in months(index)
    with index.begin() as conn:
        purge(conn, [stray], searchmonths.with_partition(conn, [stray]))
    # rows in DEFAULT: deleted one by one, nothing dropped
    assert where(index, stray) == set()


def test_an_older_index_keeps_its_plain_table_until_rebuilt(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with postgres.fresh_database() as url:
        engine = make_engine(url)
        with engine.begin() as conn:  # an index at schema 6: one plain search_docs
            search.METADATA.create_all(conn)
            conn.execute(text("CREATE EXTENSION IF NOT EXISTS pg_trgm"))
            conn.execute(insert(search.META).values(key="schema", value="6"))
        add(engine, session_in(OLD, 1), ["error before the upgrade"])
        with caplog.at_level(logging.WARNING, logger="sshtrail.search"):
            search.ensure_schema(engine)
        assert "sshtrail index --rebuild" in caplog.text
        with engine.connect() as conn:
            assert not partitions.partitioned(conn, "search_docs")
            version = conn.execute(select(search.META.c.value)).scalar()
            assert version == str(search.SCHEMA_VERSION)
            assert [h.text for h in search.search(conn, Query("error"))] == [
                "error before the upgrade"
            ]
        search.drop_schema(engine)  # what 'sshtrail index --rebuild' does first
        search.ensure_schema(engine)
        with engine.connect() as conn:
            assert partitions.partitioned(conn, "search_docs")
        engine.dispose()


def test_each_look_of_the_purge_makes_the_months_ahead(index: Engine, store: Engine) -> None:
    last = months(index)[-1]
    with index.begin() as conn:
        searchmonths.drop(conn, last)
    assert last not in months(index)
    assert IndexPurge(store, 0.0).run(index, lambda ids: None) is False  # no tombstones
    assert months(index)[-1] == last
    with index.connect() as conn:
        target = conn.execute(
            text(
                "SELECT attstattarget FROM pg_attribute "
                "WHERE attrelid = CAST(:name AS regclass) AND attname = 'text'"
            ),
            {"name": last.name("search_docs")},
        ).scalar()
    assert target == searchmonths.TEXT_STATISTICS
