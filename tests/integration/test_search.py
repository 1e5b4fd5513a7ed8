"""The search test-suite every backend must pass: SQLite FTS5 trigram and PostgreSQL pg_trgm."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, select, text, update

from consumer.indexer import IndexWriter
from consumer.messages import Received
from sshtrail import search
from sshtrail.db import make_engine
from sshtrail.promptflag import flagged_ids
from sshtrail.search import DOCS, Query
from sshtrail.states import MaskedInput
from sshtrail.wire import decode_chunk
from tests.support.recordings import typed_session

pytestmark = pytest.mark.integration

T0 = dt.datetime(2026, 11, 25, 9, 0, tzinfo=dt.UTC)
ADMIN = [
    ("sudo rm -rf /var/cache/build", ""),
    ("ssh deploy@10.0.3.7 uptime", " 09:00:01 up 12 days"),
    ("cat /etc/shadow", "cat: /etc/shadow: Permission denied"),
    ("psql -c 'DROP TABLE users'", "DROP TABLE"),
    ("echo 100% a_b", "100% a_b"),
]
OTHER = [("ls /srv", "app  data"), ("grep -r needle /srv/app", "")]


def index_engine(url: str) -> Engine:
    engine = make_engine(url)
    search.ensure_schema(engine)
    return engine


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = index_engine(database_url)
    yield engine
    engine.dispose()


def received(messages: list[bytes]) -> list[Received]:
    return [Received(decode_chunk(m), 0, i, T0) for i, m in enumerate(messages)]


@pytest.fixture
def sessions(engine: Engine) -> dict[str, uuid.UUID]:
    ns = 1_000_000_000
    alice, a_messages = typed_session(
        ADMIN, operator="alice", target="db01", started_at=int(T0.timestamp()) * ns
    )
    bob, b_messages = typed_session(
        OTHER,
        operator="bob",
        target="web01",
        started_at=int(T0.timestamp() + 3600) * ns,
        exit_status=4,
    )
    IndexWriter(engine).write(received(a_messages) + received(b_messages))
    return {"alice": alice, "bob": bob}


def find(engine: Engine, text: str, **filters: object) -> list[search.Hit]:
    with engine.connect() as conn:
        return search.search(conn, Query(text, **filters))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("needle", "expected"),
    [
        ("rm -rf", [("command", "sudo rm -rf /var/cache/build")]),
        ("10.0.3.7", [("meta", None), ("command", "ssh deploy@10.0.3.7 uptime"), ("meta", None)]),
        (
            "/etc/shadow",
            [("command", "cat /etc/shadow"), ("output", "cat: /etc/shadow: Permission denied")],
        ),
        ("drop table", [("command", "psql -c 'DROP TABLE users'"), ("output", "DROP TABLE")]),
        ("DROP TABLE", [("command", "psql -c 'DROP TABLE users'"), ("output", "DROP TABLE")]),
        ("100%", [("command", "echo 100% a_b"), ("output", "100% a_b")]),
        ("a_b", [("command", "echo 100% a_b"), ("output", "100% a_b")]),
        ("%", [("command", "echo 100% a_b"), ("output", "100% a_b")]),
        ("needle", [("command", "grep -r needle /srv/app")]),
        ("no such thing", []),
    ],
)
def test_substrings_find_what_a_person_expects(
    engine: Engine,
    sessions: dict[str, uuid.UUID],
    needle: str,
    expected: list[tuple[str, str | None]],
) -> None:
    hits = find(engine, needle)
    assert [(h.kind, h.text if expected and h.kind != "meta" else None) for h in hits] == [
        (kind, text if kind != "meta" else None) for kind, text in expected
    ]


def test_hits_carry_session_operator_target_and_offset(
    engine: Engine, sessions: dict[str, uuid.UUID]
) -> None:
    [hit] = find(engine, "cat /etc/shadow", kind="command")
    assert (hit.session_id, hit.operator, hit.target) == (sessions["alice"], "alice", "db01")
    assert hit.t > 0
    assert hit.at == T0 + dt.timedelta(microseconds=hit.t // 1000)


def test_filters_narrow_the_hits(engine: Engine, sessions: dict[str, uuid.UUID]) -> None:
    assert {h.operator for h in find(engine, "s")} == {"alice", "bob"}
    assert {h.operator for h in find(engine, "s", operator="bob")} == {"bob"}
    assert {h.target for h in find(engine, "s", target="db01")} == {"db01"}
    assert {h.kind for h in find(engine, "s", kind="output")} == {"output"}
    assert {h.session_id for h in find(engine, "s", session_id=sessions["bob"])} == {
        sessions["bob"]
    }
    assert {h.operator for h in find(engine, "s", exit_status=4)} == {"bob"}
    assert {h.operator for h in find(engine, "s", exit_status=0)} == {"alice"}
    assert find(engine, "s", exit_status=1) == []
    late = T0 + dt.timedelta(minutes=30)
    assert {h.operator for h in find(engine, "s", since=late)} == {"bob"}
    assert {h.operator for h in find(engine, "s", until=late)} == {"alice"}
    assert len(find(engine, "s", limit=3)) == 3
    # Masked input, as the indexer marks it from the session's events:
    assert find(engine, "s", masked_input=MaskedInput.MASKED) == []
    with engine.begin() as conn:
        conn.execute(
            update(search.SESSIONS)
            .where(search.SESSIONS.c.session_id == sessions["bob"])
            .values(masked_input=MaskedInput.SUSPICIOUS.value)
        )
    for wanted in MaskedInput:  # a suspicious session is one with masked input too
        assert {h.operator for h in find(engine, "s", masked_input=wanted)} == {"bob"}


def test_metadata_is_searchable(engine: Engine, sessions: dict[str, uuid.UUID]) -> None:
    [hit] = find(engine, "192.0.2.10", operator="bob")
    assert hit.kind == "meta"
    assert "operator bob target web01 client 192.0.2.10:50022" in hit.text


def all_documents(engine: Engine) -> set[tuple[object, ...]]:
    with engine.connect() as conn:
        rows = conn.execute(
            select(
                DOCS.c.session_id, DOCS.c.kind, DOCS.c.ordinal, DOCS.c.seq, DOCS.c.t, DOCS.c.text
            )
        )
        return {tuple(row) for row in rows}


def test_redelivery_changes_nothing(engine: Engine) -> None:
    _, messages = typed_session(ADMIN)
    writer = IndexWriter(engine)
    first = writer.write(received(messages))
    before = all_documents(engine)
    again = writer.write(received(messages[2:5] + messages))
    assert (first.duplicates, again.written) == (0, 0)
    assert all_documents(engine) == before


def test_a_member_taking_over_mid_session_indexes_exactly_what_one_would(
    engine: Engine, tmp_path: Path
) -> None:
    _, messages = typed_session(ADMIN + OTHER, events_per_chunk=3)
    baseline = index_engine(f"sqlite:///{tmp_path / 'baseline.db'}")
    IndexWriter(baseline).write(received(messages))
    for cut in (1, 7, len(messages) // 2, len(messages) - 1):
        engine_docs = _in_two_halves(engine, messages, cut)
        assert engine_docs == all_documents(baseline), f"cut at chunk {cut}"
    baseline.dispose()


def _in_two_halves(engine: Engine, messages: list[bytes], cut: int) -> set[tuple[object, ...]]:
    with engine.begin() as conn:
        for table in (search.DOCS, search.SESSIONS, search.BACKLOG):
            conn.execute(table.delete())
    IndexWriter(engine).write(received(messages[:cut]))
    # A different member: nothing in memory, it rebuilds the terminal from the backlog.
    IndexWriter(engine).write(received(messages[cut:]))
    return all_documents(engine)


def test_finished_sessions_leave_no_backlog(engine: Engine) -> None:
    _, messages = typed_session(OTHER)
    IndexWriter(engine).write(received(messages[:-1]))
    with engine.connect() as conn:
        assert conn.execute(select(search.BACKLOG.c.seq)).all()
    IndexWriter(engine).write(received(messages[-1:]))
    with engine.connect() as conn:
        assert conn.execute(select(search.BACKLOG.c.seq)).all() == []
        assert conn.execute(select(search.SESSIONS.c.ended)).scalars().all() == [True]


def test_a_hit_says_where_the_text_matched(engine: Engine, sessions: dict[str, uuid.UUID]) -> None:
    [hit] = find(engine, "ETC/SHADOW", kind="output")
    assert hit.text == "cat: /etc/shadow: Permission denied"
    assert hit.matches("ETC/SHADOW") == [(6, 16)]
    assert hit.certain


def test_an_index_of_the_previous_schema_is_brought_up_to_date(database_url: str) -> None:
    """Version 3 had no ``certain`` on documents and no ``exit_status`` on sessions (and
    version 4 no ``last_digest``, version 5 no ``uncertain_prompt``): its documents read
    as certain, its sessions as of unknown exit and not flagged."""
    engine = index_engine(database_url)
    session_id = uuid.uuid4()
    with engine.begin() as conn:
        conn.execute(text("ALTER TABLE search_docs DROP COLUMN certain"))
        conn.execute(text("ALTER TABLE search_sessions DROP COLUMN exit_status"))
        conn.execute(text("ALTER TABLE search_sessions DROP COLUMN last_digest"))
        conn.execute(text("DROP INDEX ix_search_sessions_uncertain_prompt"))
        conn.execute(text("ALTER TABLE search_sessions DROP COLUMN uncertain_prompt"))
        conn.execute(update(search.META).values(value="3"))
        conn.execute(
            text(
                "INSERT INTO search_docs (session_id, kind, ordinal, seq, t, text) "
                "VALUES (:s, 'command', 0, 0, 5, 'uptime')"
            ),
            {"s": session_id.hex if engine.dialect.name == "sqlite" else str(session_id)},
        )
    search.ensure_schema(engine)
    with engine.connect() as conn:
        assert conn.execute(select(search.META.c.value)).scalar() == str(search.SCHEMA_VERSION)
        [hit] = search.search(conn, Query("uptime"))
        assert flagged_ids(conn) == frozenset()
    assert hit.session_id == session_id
    assert hit.certain
    assert find(engine, "uptime", exit_status=0) == []
    engine.dispose()
