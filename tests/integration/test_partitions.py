"""Monthly partitions on real PostgreSQL: months made ahead, rows nothing else takes
kept in DEFAULT, and retention dropping a wholly due month with a tombstone for each
of its sessions -- but never a month holding a session under legal hold."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import Connection, Engine, insert, select, text

from consumer.deletion import Deletion, drop_month
from consumer.messages import Received
from consumer.retentionwork import RetentionWork
from consumer.store import StoreWriter
from sshtrail import holds, migrate, partitions, retention, tombstone
from sshtrail.db import make_engine
from sshtrail.ids import uuid7
from sshtrail.partitions import Month
from sshtrail.scope import Scope
from sshtrail.tables import DELETIONS, SESSIONS, TRANSFERS
from sshtrail.wire import decode_chunk
from tests.support import postgres
from tests.support.recordings import recording

pytestmark = pytest.mark.integration

SIGNER = Ed25519PrivateKey.generate()
#: The counters a session row cannot be without.
ZERO = {"bytes_in": 0, "bytes_out": 0, "chunk_count": 0}
MONTH_KEEP = retention.Rule("month", Scope(("*",), ("*",)), dt.timedelta(days=30), None)


@pytest.fixture
def engine() -> Iterator[Engine]:
    """A PostgreSQL store at the latest schema (partitions exist only there)."""
    with postgres.fresh_database() as url:
        migrate.upgrade(url)
        made = make_engine(url)
        yield made
        made.dispose()


def store(engine: Engine, count: int) -> list[uuid.UUID]:
    """``count`` closed sessions stored by the store group's writer, each with a
    transfer (a row of an unpartitioned table that refers to the session)."""
    writer = StoreWriter(engine, dt.timedelta(hours=1))
    at = dt.datetime.now(dt.UTC)
    ids = []
    for number in range(count):
        sid, messages = recording(chunks=3, operator=f"op{number}")
        writer.write([Received(decode_chunk(m), 0, i, at) for i, m in enumerate(messages)])
        ids.append(sid)
    with engine.begin() as conn:
        for sid in ids:
            conn.execute(
                insert(TRANSFERS).values(
                    session_id=sid,
                    idx=0,
                    t=0,
                    protocol="sftp",
                    op="read",
                    path="/etc/x",
                    status="ok",
                    bytes=1,
                    detail={},
                )
            )
    return ids


def partition_of(engine: Engine, session_id: uuid.UUID) -> str:
    with engine.connect() as conn:
        return str(
            conn.execute(
                text("SELECT tableoid::regclass::text FROM sessions WHERE id = :id"),
                {"id": session_id},
            ).scalar_one()
        )


def test_months_ahead_are_made_and_a_month_with_rows_in_default_is_left_alone(
    engine: Engine,
) -> None:
    may = dt.datetime(2030, 5, 10, tzinfo=dt.UTC)
    early = uuid7(int(may.timestamp() * 1000))
    with engine.begin() as conn:
        conn.execute(insert(SESSIONS).values(id=early, status="closed", gaps=[], **ZERO))
    assert partition_of(engine, early) == "sshtrail_months.sessions_default"
    with engine.begin() as conn:
        made = partitions.ensure_months(conn, may)
        assert Month(2030, 5) not in partitions.months(conn, "sessions")
        assert Month(2030, 5) not in partitions.months(conn, "chunks")
    assert made == [
        f"sshtrail_months.{table}_y2030m{month:02d}"
        for month in (6, 7, 8)
        for table in ("sessions", "chunks")
    ]
    later = uuid7(int(dt.datetime(2030, 7, 1, tzinfo=dt.UTC).timestamp() * 1000))
    with engine.begin() as conn:
        conn.execute(insert(SESSIONS).values(id=later, status="closed", gaps=[], **ZERO))
        assert partitions.ensure_months(conn, may) == []  # a second look makes nothing
    assert partition_of(engine, later) == "sshtrail_months.sessions_y2030m07"


def test_a_wholly_due_month_is_dropped_with_a_tombstone_for_each_session(
    engine: Engine,
) -> None:
    ids = store(engine, 3)
    month = Month.of(dt.datetime.now(dt.UTC))
    assert {partition_of(engine, sid) for sid in ids} == {
        f"sshtrail_months.{month.name('sessions')}"
    }
    # A month and more after the month's end: every session in it is 30 days gone.
    at = month.end + dt.timedelta(days=31)
    work = RetentionWork(engine, [MONTH_KEEP], 0.01, SIGNER, clock=lambda: at)
    work.run(5.0)
    assert (work.months_dropped, work.deleted) == (1, 3)
    with engine.connect() as conn:
        assert month not in partitions.months(conn, "sessions")
        assert month not in partitions.months(conn, "chunks")
        assert conn.execute(select(SESSIONS.c.id)).all() == []
        assert conn.execute(select(TRANSFERS.c.id)).all() == []
        stones = {row["session_id"]: row for row in conn.execute(select(DELETIONS)).mappings()}
    assert set(stones) == set(ids)
    own = SIGNER.public_key().public_bytes_raw()
    for stone in stones.values():
        assert (stone["rule"], stone["verdict"], stone["chunk_count"]) == ("month", "ok", 3)
        assert tombstone.check(dict(stone), own).ok


def test_a_month_holding_a_held_session_is_not_dropped(engine: Engine) -> None:
    ids = store(engine, 3)
    month = Month.of(dt.datetime.now(dt.UTC))
    with engine.begin() as conn:
        holds.place(
            conn,
            by="legal",
            reason="lawsuit",
            case="C-1",
            at=dt.datetime.now(dt.UTC),
            session_id=ids[0],
        )
    at = month.end + dt.timedelta(days=31)
    work = RetentionWork(engine, [MONTH_KEEP], 0.01, SIGNER, clock=lambda: at)
    work.run(5.0)
    assert work.months_dropped == 0
    assert work.deleted == 2  # the others go row by row
    with engine.connect() as conn:
        assert month in partitions.months(conn, "sessions")
        assert set(conn.execute(select(SESSIONS.c.id)).scalars()) == {ids[0]}


def test_a_month_verified_by_a_pool_has_the_tombstones_one_process_gives(
    engine: Engine,
) -> None:
    """Workers verify a month's chains as this process would: the intact sessions'
    tombstones say ``ok``, an altered chunk's says ``tampered``, a removed one's ``gap``."""
    intact, altered, cut = store(engine, 3)
    with engine.begin() as conn:
        conn.execute(
            text(
                "UPDATE chunks SET data = substring(data FROM 1 FOR length(data) - 1) "
                "|| CASE WHEN get_byte(data, length(data) - 1) = 0 THEN '\\x01'::bytea "
                "ELSE '\\x00'::bytea END WHERE session_id = :id AND seq = 1"
            ),
            {"id": altered},
        )
        conn.execute(text("DELETE FROM chunks WHERE session_id = :id AND seq = 1"), {"id": cut})
    month = Month.of(dt.datetime.now(dt.UTC))
    deletion = Deletion("month", tombstone.BY_RETENTION, "x", SIGNER, dt.datetime.now(dt.UTC))

    def stones(conn: Connection) -> dict[uuid.UUID, tuple[str, bytes | None]]:
        rows = conn.execute(
            select(DELETIONS.c.session_id, DELETIONS.c.verdict, DELETIONS.c.final_digest)
        )
        return {sid: (verdict, digest) for sid, verdict, digest in rows}

    with engine.connect() as conn:
        assert drop_month(conn, month, lambda _: deletion, workers=1) == 3
        one_process = stones(conn)
        conn.rollback()
    with engine.begin() as conn:
        assert drop_month(conn, month, lambda _: deletion, workers=2) == 3
    with engine.connect() as conn:
        pooled = stones(conn)
        rows = list(conn.execute(select(DELETIONS)).mappings())
        assert month not in partitions.months(conn, "sessions")
    assert pooled == one_process
    assert {sid: verdict for sid, (verdict, _) in pooled.items()} == {
        intact: "ok",
        altered: "tampered",
        cut: "gap",
    }
    own = SIGNER.public_key().public_bytes_raw()
    assert all(tombstone.check(dict(row), own).ok for row in rows)
