"""Alembic migrations and the models, on a real SQLite file and real PostgreSQL."""

from __future__ import annotations

import collections
import datetime as dt
import uuid
from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from alembic.script import ScriptDirectory
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import sessionmaker

from sshtrail import migrate
from sshtrail.db import make_engine
from sshtrail.ids import uuid7
from sshtrail.models import ChunkRecord, SessionRecord
from tests.support import postgres
from tests.support.recordings import recording

pytestmark = pytest.mark.integration


def tables(url: str) -> set[str]:
    engine = make_engine(url)
    try:
        return set(sa.inspect(engine).get_table_names())
    finally:
        engine.dispose()


def store_at_0001(url: str, stored: list[tuple[uuid.UUID, int, bytes]]) -> None:
    """Store (session, seq, data) chunks, and their closed sessions, in the tables as
    revision 0001 made them (the models know the columns later revisions add)."""
    sessions = sa.table(
        "sessions",
        sa.column("id", sa.Uuid()),
        sa.column("status"),
        sa.column("bytes_in"),
        sa.column("bytes_out"),
        sa.column("chunk_count"),
        sa.column("gaps", sa.JSON()),
    )
    chunks = sa.table(
        "chunks",
        sa.column("session_id", sa.Uuid()),
        sa.column("seq"),
        sa.column("t_first"),
        sa.column("t_last"),
        sa.column("partition"),
        sa.column("offset"),
        sa.column("data", sa.LargeBinary()),
        sa.column("received_at", sa.DateTime(timezone=True)),
    )
    now = dt.datetime.now(dt.UTC)
    counts = collections.Counter(session_id for session_id, _, _ in stored)
    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            for session_id, count in counts.items():
                conn.execute(
                    sa.insert(sessions).values(
                        id=session_id,
                        status="closed",
                        bytes_in=0,
                        bytes_out=0,
                        chunk_count=count,
                        gaps=[],
                    )
                )
            for session_id, seq, data in stored:
                conn.execute(
                    sa.insert(chunks).values(
                        session_id=session_id,
                        seq=seq,
                        t_first=0,
                        t_last=0,
                        partition=0,
                        offset=seq,
                        data=data,
                        received_at=now,
                    )
                )
    finally:
        engine.dispose()


def test_upgrade_from_empty_then_downgrade_to_base(database_url: str) -> None:
    assert migrate.current_revision(database_url) is None
    migrate.upgrade(database_url)
    assert migrate.current_revision(database_url) == migrate.head_revision()
    assert {"sessions", "chunks", "alembic_version"} <= tables(database_url)
    migrate.upgrade(database_url)  # a second run is a no-op
    migrate.downgrade(database_url, "base")
    assert migrate.current_revision(database_url) is None
    assert tables(database_url) <= {"alembic_version"}


def test_models_and_migrations_do_not_drift(database_url: str) -> None:
    migrate.upgrade(database_url)
    assert migrate.pending_model_changes(database_url) == []


def test_rows_round_trip_with_utc_times_and_cascade(database_url: str) -> None:
    migrate.upgrade(database_url)
    engine = make_engine(database_url)
    sessions = sessionmaker(engine, expire_on_commit=False)
    sid = uuid7()
    started = dt.datetime(2026, 11, 25, 15, 0, 0, 123456, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    with sessions.begin() as db:
        db.add(SessionRecord(id=sid, operator="alice", started_at=started, gaps=[[3, 5]]))
        db.add(
            ChunkRecord(
                session_id=sid,
                seq=0,
                t_first=0,
                t_last=5,
                partition=2,
                offset=7,
                data=b"\x00\xff" * 10,
                received_at=dt.datetime.now(dt.UTC),
            )
        )
    with sessions() as db:
        row = db.get(SessionRecord, sid)
        assert row is not None
        assert row.started_at == started
        assert row.started_at.tzinfo == dt.UTC
        assert row.status == "active"
        assert row.gaps == [[3, 5]]
        assert [chunk.data for chunk in row.chunks] == [b"\x00\xff" * 10]
    with pytest.raises(IntegrityError), sessions.begin() as db:  # (session, seq) is unique
        db.add(
            ChunkRecord(
                session_id=sid,
                seq=0,
                t_first=0,
                t_last=0,
                partition=2,
                offset=8,
                data=b"",
                received_at=dt.datetime.now(dt.UTC),
            )
        )
    with sessions.begin() as db:
        db.execute(sa.delete(SessionRecord).where(SessionRecord.id == sid))
    with sessions() as db:
        assert db.scalar(sa.select(sa.func.count()).select_from(ChunkRecord)) == 0
    engine.dispose()


def test_naive_datetimes_are_refused(sqlite_url: str) -> None:
    migrate.upgrade(sqlite_url)
    engine = make_engine(sqlite_url)
    with (
        pytest.raises(sa.exc.StatementError, match="naive datetime"),
        sessionmaker(engine, expire_on_commit=False).begin() as db,
    ):
        db.add(SessionRecord(id=uuid7(), started_at=dt.datetime(2026, 1, 1)))
    engine.dispose()


def test_sqlite_runs_in_wal_mode_with_foreign_keys(sqlite_url: str) -> None:
    engine = make_engine(sqlite_url)
    with engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    engine.dispose()


def test_requests_of_sessions_stored_before_0002_are_filled_in(database_url: str) -> None:
    """0002 adds sessions.request/command and fills them from the stored first chunks."""
    migrate.upgrade(database_url, "0001")
    sid, messages = recording(chunks=3, legacy=True)  # stored then: written before format 4
    damaged = uuid7()
    stored = [(sid, seq, data) for seq, data in enumerate(messages)]
    store_at_0001(database_url, [*stored, (damaged, 0, b"not a chunk")])
    migrate.upgrade(database_url)
    engine = make_engine(database_url)
    with engine.connect() as conn:
        got = {
            row.id: (row.request, row.command)
            for row in conn.execute(
                sa.select(SessionRecord.id, SessionRecord.request, SessionRecord.command)
            )
        }
    engine.dispose()
    assert got == {sid: ("exec", "uptime"), damaged: (None, None)}
    migrate.downgrade(database_url, "0001")
    assert migrate.current_revision(database_url) == "0001"


def test_sftp_and_scp_sessions_stored_before_0004_are_read_for_transfers(
    database_url: str,
) -> None:
    """0004 marks ended SFTP and scp sessions ``pending``: the store group reads them."""
    migrate.upgrade(database_url, "0003")
    sessions = sa.table(
        "sessions",
        sa.column("id", sa.Uuid()),
        sa.column("status"),
        sa.column("request"),
        sa.column("command"),
        sa.column("end_reason"),
        sa.column("bytes_in"),
        sa.column("bytes_out"),
        sa.column("chunk_count"),
        sa.column("gaps", sa.JSON()),
    )
    rows = {
        uuid7(): ("subsystem", "sftp", "exit status 0", "pending"),
        uuid7(): ("exec", "scp -t /tmp", "exit status 0", "pending"),
        uuid7(): ("exec", "/usr/bin/scp -f /etc/x", "exit status 1", "pending"),
        uuid7(): ("subsystem", "sftp", None, None),  # still active: read once it ends
        uuid7(): ("exec", "ls", "exit status 0", None),
        uuid7(): ("shell", "", "exit status 0", None),
    }
    engine = make_engine(database_url)
    with engine.begin() as conn:
        for session_id, (request, command, end, _) in rows.items():
            conn.execute(
                sa.insert(sessions).values(
                    id=session_id,
                    status="closed" if end else "active",
                    request=request,
                    command=command,
                    end_reason=end,
                    bytes_in=0,
                    bytes_out=0,
                    chunk_count=1,
                    gaps=[],
                )
            )
    engine.dispose()
    migrate.upgrade(database_url)
    engine = make_engine(database_url)
    try:
        with engine.connect() as conn:
            got = dict(conn.execute(sa.select(SessionRecord.id, SessionRecord.transfers)).all())
    finally:
        engine.dispose()
    assert got == {session_id: row[3] for session_id, row in rows.items()}


def test_no_chunk_is_lost_by_an_upgrade(database_url: str) -> None:
    """SQLite alters a table by copying it and dropping the old one; with foreign keys
    on, dropping ``sessions`` deleted every chunk by cascade. Each revision is applied
    in turn to a store with sessions and chunks, which must all be there after it."""
    migrate.upgrade(database_url, "0001")
    stored = []
    for _ in range(2):
        sid, messages = recording(chunks=3, legacy=True)
        stored += [(sid, seq, data) for seq, data in enumerate(messages)]
    store_at_0001(database_url, stored)
    script = ScriptDirectory.from_config(migrate.alembic_config(database_url))
    revisions = [r.revision for r in reversed(list(script.walk_revisions()))][1:]
    engine = make_engine(database_url)
    try:
        for revision in revisions:
            migrate.upgrade(database_url, revision)
            with engine.connect() as conn:
                count = conn.execute(sa.select(sa.func.count()).select_from(ChunkRecord)).scalar()
            assert count == len(stored), f"{len(stored) - (count or 0)} chunks lost by {revision}"
    finally:
        engine.dispose()


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh PostgreSQL database (partitions exist only there)."""
    with postgres.fresh_database() as url:
        yield url


def test_a_store_at_0005_is_partitioned_by_month_in_place(postgres_url: str) -> None:
    """0016 makes ``sessions`` and ``chunks`` partitioned by month on a store with data:
    every row is kept, each in its month's partition (a non-UUIDv7 id in DEFAULT), the
    models still match, and the downgrade makes plain tables of them again."""
    migrate.upgrade(postgres_url, "0005")
    months = [dt.datetime(2025, month, 14, 9, tzinfo=dt.UTC) for month in (1, 2, 7, 12)]
    stored = [(uuid7(int(when.timestamp() * 1000)), 0, b"chunk") for when in months]
    stored += [(sid, 1, b"second") for sid, _, _ in stored]
    legacy = uuid.UUID("8f4a3c1e-2b6d-4e0f-9a1b-3c5d7e9f1a2b")  # a uuid4: no month
    stored.append((legacy, 0, b"old"))
    store_at_0001(postgres_url, stored)
    migrate.upgrade(postgres_url)

    engine = make_engine(postgres_url)
    try:
        with engine.connect() as conn:
            where: dict[str, dict[uuid.UUID, str]] = {
                table: dict(
                    conn.execute(
                        sa.text(f"SELECT {key}, tableoid::regclass::text FROM {table}")
                    ).all()
                )
                for table, key in (("sessions", "id"), ("chunks", "session_id"))
            }
            chunk_count = conn.execute(sa.text("SELECT count(*) FROM chunks")).scalar()
            parents = set(
                conn.execute(
                    sa.text(
                        "SELECT inhparent::regclass::text FROM pg_inherits "
                        "JOIN pg_class ON pg_class.oid = inhrelid WHERE relkind = 'r'"
                    )
                ).scalars()
            )
    finally:
        engine.dispose()
    assert chunk_count == len(stored)
    assert parents == {"sessions", "chunks"}
    for table in ("sessions", "chunks"):
        expected = {
            sid: f"sshtrail_months.{table}_y{when.year}m{when.month:02d}"
            for (sid, _, _), when in zip(stored, months, strict=False)
        }
        expected[legacy] = f"sshtrail_months.{table}_default"
        assert where[table] == expected
    assert migrate.pending_model_changes(postgres_url) == []

    migrate.downgrade(postgres_url, "0015")
    engine = make_engine(postgres_url)
    try:
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT count(*) FROM chunks")).scalar() == len(stored)
            assert conn.execute(sa.text("SELECT count(*) FROM pg_partitioned_table")).scalar() == 0
    finally:
        engine.dispose()
    # The plain tables are as the models say, but for the indexes 0017 adds after.
    changes = migrate.pending_model_changes(postgres_url)
    missing = {c[1].name for c in changes if isinstance(c, tuple) and c[0] == "add_index"}
    assert len(missing) == len(changes), changes
    assert missing == {
        "ix_chunks_partition_offset",
        "ix_transfers_path_trgm",
        "ix_transfers_path2_trgm",
    }
