"""The index writer against a real index database: no session can stop or stall the others.

* a session whose output the emulator fails on is quarantined, the batch and
  the other sessions go on;
* a costly session's chunks wait in the backlog while cheap sessions are
  indexed at once, and are indexed later, to the same documents;
* a member that takes a session over from its kept chunks (the backlog is
  bounded) goes on numbering documents where the last one stopped.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select

from consumer.indexbacklog import KEEP_BYTES
from consumer.indexer import IndexWriter
from consumer.messages import Received
from consumer.writer import Written
from sshtrail import events as ev
from sshtrail import search, terminal
from sshtrail.db import make_engine
from sshtrail.search import BACKLOG, DOCS, SESSIONS
from sshtrail.wire import decode_chunk
from tests.support.recordings import events_session

pytestmark = pytest.mark.integration

T0 = dt.datetime(2026, 12, 1, 9, 0, tzinfo=dt.UTC)


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url)
    search.ensure_schema(engine)
    yield engine
    engine.dispose()


def received(messages: list[bytes], first_offset: int = 0) -> list[Received]:
    return [Received(decode_chunk(m), 0, first_offset + i, T0) for i, m in enumerate(messages)]


def lines_session(count: int, marker: str, per_chunk: int = 50) -> tuple[uuid.UUID, list[bytes]]:
    chunks = []
    for start in range(0, count, per_chunk):
        data = "".join(f"{marker} {n}\r\n" for n in range(start, min(start + per_chunk, count)))
        chunks.append([ev.Output(start + 1, data.encode())])
    return events_session(chunks)


def documents(engine: Engine, session_id: uuid.UUID) -> list[tuple[str, int, str]]:
    with engine.connect() as conn:
        rows = conn.execute(
            select(DOCS.c.kind, DOCS.c.ordinal, DOCS.c.text)
            .where(DOCS.c.session_id == session_id)
            .order_by(DOCS.c.kind, DOCS.c.ordinal)
        )
        return [(kind, ordinal, text) for kind, ordinal, text in rows]


def state(engine: Engine, session_id: uuid.UUID) -> dict[str, object]:
    with engine.connect() as conn:
        row = conn.execute(select(SESSIONS).where(SESSIONS.c.session_id == session_id)).one()
        return dict(row._mapping)


def test_a_session_the_emulator_fails_on_is_quarantined_and_nothing_else_stops(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = terminal.Terminal.flush

    def flush(self: terminal.Terminal) -> None:
        if any(b"POISON" in data for data in self._pending):
            raise MemoryError("no room for a screen that size")
        real(self)

    monkeypatch.setattr(terminal.Terminal, "flush", flush)
    good, good_messages = lines_session(20, "fine")
    bad, bad_messages = events_session([[ev.Output(1, b"ok\r\n")], [ev.Output(2, b"POISON")]])
    writer = IndexWriter(engine)
    written = writer.write(received(bad_messages[:2]) + received(good_messages))
    assert written.written >= len(good_messages)
    writer.write(received(bad_messages[2:]))  # the rest of it: taken, not indexed
    assert any(text == "fine 19" for _kind, _n, text in documents(engine, good))
    quarantined = state(engine, bad)
    assert quarantined["ended"] is True
    assert "MemoryError: no room for a screen that size" in str(quarantined["quarantine_reason"])
    assert ("output", 0, "ok") in documents(engine, bad)  # what came before stays
    with engine.connect() as conn:
        kept = conn.execute(select(func.count()).where(BACKLOG.c.session_id == bad)).scalar()
    assert kept == 0


def test_a_costly_session_waits_and_the_others_do_not(engine: Engine, tmp_path: Path) -> None:
    # Escape-heavy output: no cheap path, every character through the emulator.
    heavy_chunks = [
        [
            ev.Output(
                n + 1, b"".join(b"\x1b[1;3%dmX\x1b[0m" % (i % 8) for i in range(4000)) + b"\r\n"
            )
        ]
        for n in range(60)
    ]
    heavy, heavy_messages = events_session(heavy_chunks)
    light, light_messages = lines_session(10, "light")
    writer = IndexWriter(engine, budget_s=0.05)
    first, last = heavy_messages[:-3], heavy_messages[-3:]
    taken = writer.write(received(first) + received(light_messages))
    assert taken == Written(len(first) + len(light_messages), 0)  # indexed or kept
    assert [text for _k, _n, text in documents(engine, light) if text.startswith("light")] == [
        f"light {n}" for n in range(10)
    ]
    behind = state(engine, heavy)
    assert int(str(behind["next_seq"])) < len(first)  # waiting in the backlog
    # What arrives next joins the queue; the batch counts its own chunks only, though
    # it indexes some of those that waited (a negative count once killed the member).
    assert writer.write(received(last, first_offset=len(first))) == Written(len(last), 0)
    rounds = 0
    while writer.background(0.05):
        rounds += 1
        assert rounds < 1000
    assert state(engine, heavy)["ended"] is True
    # Indexed in slices between batches, it is indexed as if in one go (on both engines,
    # against an index that took it whole).
    reference = make_engine(f"sqlite:///{tmp_path / 'reference.db'}")
    try:
        search.ensure_schema(reference)
        IndexWriter(reference, budget_s=3600).write(received(heavy_messages))
        assert documents(engine, heavy) == documents(reference, heavy)
    finally:
        reference.dispose()


def test_a_member_takes_a_session_over_from_its_kept_chunks(engine: Engine) -> None:
    session_id, messages = lines_session(20_000, "row", per_chunk=400)  # far beyond KEEP_BYTES
    # Budgets far beyond the work: the test is about what a member keeps and takes over, and a
    # slow machine would otherwise leave chunks waiting in the backlog for a later round.
    first = IndexWriter(engine, budget_s=3600)
    half = len(messages) // 2
    for start in range(0, half, 5):
        first.write(received(messages[start : min(start + 5, half)]))
    with engine.connect() as conn:
        kept = conn.execute(
            select(func.sum(func.length(BACKLOG.c.data))).where(BACKLOG.c.session_id == session_id)
        ).scalar()
    assert kept is not None
    assert kept <= KEEP_BYTES + 2 * max(len(m) for m in messages)
    second = IndexWriter(engine, budget_s=3600)  # another member, nothing in memory
    second.write(received(messages[half:]))
    found = documents(engine, session_id)
    rows = sorted((n, text) for kind, n, text in found if kind == "output")
    assert [text for _n, text in rows] == [f"row {n}" for n in range(20_000)]
    assert [n for n, _text in rows] == list(range(20_000))
