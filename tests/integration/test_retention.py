"""Retention, legal hold and tombstones against real SQLite and PostgreSQL: the store's
writer and its retention work, the index's purge, on the pipeline's own code."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import Engine, func, select

from consumer.deletion import Deletion, Held, delete_session
from consumer.indexer import IndexWriter
from consumer.indexpurge import DELETED, IndexPurge
from consumer.messages import Received
from consumer.retentionwork import RetentionWork
from consumer.store import StoreWriter
from sshtrail import holds, retention, search, tombstone
from sshtrail.db import make_engine
from sshtrail.errors import NotFound
from sshtrail.scope import Scope
from sshtrail.tables import ALERTS, CHUNKS, DELETIONS, SESSIONS, TRANSFERS
from sshtrail.wire import decode_chunk
from tests.support.recordings import recording
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration

SIGNER = Ed25519PrivateKey.generate()
FIVE_S = retention.Rule("short", Scope(("alice",), ("*",)), dt.timedelta(seconds=5), None)
YEARS = retention.Rule("long", Scope(("bob",), ("*",)), dt.timedelta(days=3650), None)


def received(messages: list[bytes]) -> list[Received]:
    at = dt.datetime.now(dt.UTC)
    return [Received(decode_chunk(m), 0, i, at) for i, m in enumerate(messages)]


def stored_ids(engine: Engine) -> set[uuid.UUID]:
    with engine.connect() as conn:
        return set(conn.execute(select(SESSIONS.c.id)).scalars())


def tombstones(engine: Engine) -> dict[uuid.UUID, dict[str, object]]:
    with engine.connect() as conn:
        rows = conn.execute(select(DELETIONS)).mappings()
        return {row["session_id"]: dict(row) for row in rows}


def later(seconds: float) -> dt.datetime:
    return dt.datetime.now(dt.UTC) + dt.timedelta(seconds=seconds)


@pytest.fixture
def index_engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url)
    search.ensure_schema(engine)
    yield engine
    engine.dispose()


def test_a_five_second_rule_deletes_what_it_covers_and_leaves_a_signed_tombstone(
    store_engine: Engine,
) -> None:
    short, gone = recording(chunks=4, operator="alice")
    _, kept = recording(chunks=3, operator="bob")
    _, free = recording(chunks=3, operator="carol")  # no rule: kept forever
    writer = StoreWriter(store_engine, dt.timedelta(hours=1))
    for messages in (gone, kept, free):
        writer.write(received(messages))
    work = RetentionWork(store_engine, [FIVE_S, YEARS], 0.01, SIGNER, clock=lambda: later(1))
    assert work.run(5.0) is False
    assert short in stored_ids(store_engine)  # 5 s have not passed since its end
    work = RetentionWork(store_engine, [FIVE_S, YEARS], 0.01, SIGNER, clock=lambda: later(6))
    work.run(5.0)
    assert work.deleted == 1
    assert short not in stored_ids(store_engine)
    assert len(stored_ids(store_engine)) == 2
    with store_engine.connect() as conn:
        left = conn.execute(
            select(func.count()).select_from(CHUNKS).where(CHUNKS.c.session_id == short)
        ).scalar_one()
    assert left == 0
    stone = tombstones(store_engine)[short]
    assert (stone["rule"], stone["deleted_by"], stone["verdict"]) == ("short", "retention", "ok")
    assert stone["chunk_count"] == 4
    assert stone["final_digest"] is not None
    checked = tombstone.check(stone, SIGNER.public_key().public_bytes_raw())
    assert checked.ok, checked.problem
    text = tombstone.describe(stone)
    assert text.startswith("deleted by rule short at ")
    assert f"chain was intact (hash {stone['final_digest'].hex()})" in text  # type: ignore[attr-defined]


def test_an_edited_or_foreign_tombstone_does_not_check(store_engine: Engine) -> None:
    sid, messages = recording(chunks=3)
    StoreWriter(store_engine, dt.timedelta(hours=1)).write(received(messages))
    with store_engine.begin() as conn:
        row = delete_session(
            conn, sid, Deletion(rule=None, by="dpo", reason="GDPR 17", signer=SIGNER, at=later(0))
        )
    own = SIGNER.public_key().public_bytes_raw()
    assert tombstone.check(row, own).ok
    assert not tombstone.check({**row, "rule": "short"}, own).ok
    assert not tombstone.check({**row, "chunk_count": 1}, own).ok
    other = Ed25519PrivateKey.generate().public_key().public_bytes_raw()
    assert "not the deletion key" in tombstone.check(row, other).problem
    assert "signature" in tombstone.check({**row, "body": row["body"] + b" "}, own).problem


def test_a_held_session_stays_and_deleting_it_is_refused_until_released(
    store_engine: Engine,
) -> None:
    by_id, one = recording(chunks=3, operator="alice")
    by_operator, two = recording(chunks=3, operator="alice", target="t9")
    loose, three = recording(chunks=3, operator="alice", target="t2")
    writer = StoreWriter(store_engine, dt.timedelta(hours=1))
    for messages in (one, two, three):
        writer.write(received(messages))
    now = dt.datetime.now(dt.UTC)
    with store_engine.begin() as conn:
        first = holds.place(
            conn, by="legal", reason="lawsuit", case="C-1", at=now, session_id=by_id
        )
        holds.place(conn, by="legal", reason="audit", case="C-2", at=now, target="t9")
    with store_engine.connect() as conn:
        due = retention.plan(conn, [FIVE_S], later(6))
    assert {item.session["id"]: bool(item.held_by) for item in due} == {
        by_id: True,
        by_operator: True,
        loose: False,
    }
    RetentionWork(store_engine, [FIVE_S], 0.01, SIGNER, clock=lambda: later(6)).run(5.0)
    assert stored_ids(store_engine) == {by_id, by_operator}
    with pytest.raises(Held, match="legal hold"), store_engine.begin() as conn:
        delete_session(
            conn, by_id, Deletion(rule=None, by="dpo", reason="asked", signer=SIGNER, at=now)
        )
    assert by_id in stored_ids(store_engine)
    with store_engine.begin() as conn:
        holds.release(conn, first[:8], by="legal", reason="settled", at=later(0))
    with store_engine.connect() as conn:
        released = next(h for h in holds.listed(conn) if h["id"] == first)
    assert (released["released_by"], released["release_reason"]) == ("legal", "settled")
    RetentionWork(store_engine, [FIVE_S], 0.01, SIGNER, clock=lambda: later(6)).run(5.0)
    assert stored_ids(store_engine) == {by_operator}


def test_chunks_read_again_after_deletion_do_not_bring_the_session_back(
    store_engine: Engine,
) -> None:
    sid, messages = recording(chunks=5)
    writer = StoreWriter(store_engine, dt.timedelta(hours=1))
    writer.write(received(messages))
    with store_engine.begin() as conn:
        delete_session(
            conn,
            sid,
            Deletion(rule="short", by="retention", reason="x", signer=SIGNER, at=later(0)),
        )
    again = writer.write(received(messages))  # a reprocess of the session's offsets
    assert (again.written, again.duplicates) == (0, 5)
    assert sid not in stored_ids(store_engine)
    assert sid in tombstones(store_engine)


def test_the_index_drops_a_deleted_session_and_does_not_take_it_again(
    store_engine: Engine, index_engine: Engine
) -> None:
    gone_id, gone = recording(chunks=4, text=True)
    kept_id, kept = recording(chunks=4, text=True, operator="bob")
    index = IndexWriter(index_engine, purge=IndexPurge(store_engine, 0.01))
    store = StoreWriter(store_engine, dt.timedelta(hours=1))
    for messages in (gone, kept):
        store.write(received(messages))
        index.write(received(messages))

    def documents(session_id: uuid.UUID) -> int:
        with index_engine.connect() as conn:
            query = select(func.count()).select_from(search.DOCS)
            return int(
                conn.execute(query.where(search.DOCS.c.session_id == session_id)).scalar_one()
            )

    assert documents(gone_id) > 0
    with store_engine.begin() as conn:
        delete_session(
            conn,
            gone_id,
            Deletion(rule="short", by="retention", reason="x", signer=SIGNER, at=later(0)),
        )
    index.background(1.0)
    assert documents(gone_id) == 0
    assert documents(kept_id) > 0
    index.write(received(gone))  # read again: stays out
    assert documents(gone_id) == 0
    with index_engine.connect() as conn:
        reason = conn.execute(
            select(search.SESSIONS.c.quarantine_reason).where(
                search.SESSIONS.c.session_id == gone_id
            )
        ).scalar_one()
    assert reason == DELETED


def test_the_plan_takes_the_longest_keep_and_leaves_active_sessions(store_engine: Engine) -> None:
    both = retention.Rule("both", Scope(("*",), ("t1",)), dt.timedelta(days=30), None)
    sid, messages = recording(chunks=3, operator="alice", target="t1")
    open_id, open_messages = recording(chunks=3, operator="alice", target="t2")
    writer = StoreWriter(store_engine, dt.timedelta(hours=1))
    writer.write(received(messages))
    writer.write(received(open_messages[:-1]))  # no end: active
    with store_engine.connect() as conn:
        assert retention.plan(conn, [FIVE_S, both], later(3600)) == []
        due = retention.plan(conn, [FIVE_S, both], later(31 * 86400))
    assert [(item.session["id"], item.rule.name) for item in due] == [(sid, "both")]
    assert open_id not in [item.session["id"] for item in due]


def test_a_deletion_takes_the_sessions_transfers_and_alerts_and_nothing_else(
    store_engine: Engine,
) -> None:
    sid, messages = recording(chunks=3)
    other, more = recording(chunks=3, operator="bob")
    writer = StoreWriter(store_engine, dt.timedelta(hours=1))
    writer.write(received(messages))
    writer.write(received(more))
    now = dt.datetime.now(dt.UTC)
    with store_engine.begin() as conn:
        for n, session_id in enumerate((sid, other)):
            conn.execute(
                TRANSFERS.insert().values(
                    session_id=session_id,
                    idx=0,
                    t=1,
                    protocol="sftp",
                    op="open",
                    path=f"/srv/file{n}",
                    status="ok",
                    bytes=0,
                    detail={},
                )
            )
            conn.execute(
                ALERTS.insert().values(
                    id=f"a{n}",
                    session_id=session_id,
                    seq=1,
                    t=1,
                    at=now,
                    rule_id="r",
                    title="t",
                    level="high",
                    author="a",
                    operator="x",
                    target="t1",
                    command="id",
                    tags=[],
                    event={},
                    published=False,
                    delivered=False,
                )
            )
    with store_engine.begin() as conn:
        delete_session(
            conn, sid, Deletion(rule="short", by="retention", reason="x", signer=SIGNER, at=now)
        )
    with store_engine.connect() as conn:
        for table in (TRANSFERS, ALERTS, CHUNKS):
            left = set(conn.execute(select(table.c.session_id)).scalars())
            assert left == {other}, table.name


def test_held_sessions_do_not_hold_up_the_deletion_of_others(store_engine: Engine) -> None:
    writer = StoreWriter(store_engine, dt.timedelta(hours=1))
    oldest = []
    for _ in range(3):  # the oldest, all held by one hold on their target
        sid, messages = recording(chunks=2, operator="alice", target="held")
        writer.write(received(messages))
        oldest.append(sid)
    free, messages = recording(chunks=2, operator="alice", target="t1")
    writer.write(received(messages))
    with store_engine.begin() as conn:
        holds.place(conn, by="legal", reason="r", case="C", at=later(0), target="held")
    with store_engine.connect() as conn:
        first = retention.plan(conn, [FIVE_S], later(6), limit=1)
        listed = retention.plan(conn, [FIVE_S], later(6))
    assert [item.session["id"] for item in first] == [free]
    assert [bool(item.held_by) for item in listed] == [True, True, True, False]


def test_a_hold_on_a_deleted_session_is_refused(store_engine: Engine) -> None:
    sid, messages = recording(chunks=2)
    StoreWriter(store_engine, dt.timedelta(hours=1)).write(received(messages))
    with store_engine.begin() as conn:
        delete_session(
            conn, sid, Deletion(rule=None, by="dpo", reason="x", signer=SIGNER, at=later(0))
        )
    with pytest.raises(NotFound, match="not stored"), store_engine.begin() as conn:
        holds.place(conn, by="legal", reason="r", case="C", at=later(0), session_id=sid)
    with store_engine.connect() as conn:
        assert holds.listed(conn) == []


def test_the_index_purge_pages_through_tombstones_and_looks_again_later(
    store_engine: Engine, index_engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("consumer.indexpurge.PAGE", 2)
    sessions = [recording(chunks=2, text=True) for _ in range(4)]
    index = IndexWriter(index_engine)
    store = StoreWriter(store_engine, dt.timedelta(hours=1))
    for _, messages in sessions:
        store.write(received(messages))
        index.write(received(messages))

    def delete(session_id: uuid.UUID) -> None:
        with store_engine.begin() as conn:
            delete_session(
                conn,
                session_id,
                Deletion(rule="r", by="retention", reason="x", signer=SIGNER, at=later(0)),
            )

    def ended_as_deleted() -> set[uuid.UUID]:
        with index_engine.connect() as conn:
            query = select(search.SESSIONS.c.session_id).where(
                search.SESSIONS.c.quarantine_reason == DELETED
            )
            return set(conn.execute(query).scalars())

    for session_id, _ in sessions[:3]:
        delete(session_id)
    purge = IndexPurge(store_engine, 2.0)  # room for a loaded machine before the next look
    assert purge.run(index_engine, lambda ids: None) is True  # a full page: more wait
    assert purge.run(index_engine, lambda ids: None) is False
    assert ended_as_deleted() == {sid for sid, _ in sessions[:3]}
    delete(sessions[3][0])
    assert purge.run(index_engine, lambda ids: None) is False  # not time to look yet
    assert sessions[3][0] not in ended_as_deleted()

    def looked_again() -> bool:
        purge.run(index_engine, lambda ids: None)
        return sessions[3][0] in ended_as_deleted()

    wait_for(looked_again, timeout=20, what="the next look")
