"""The store's writer against real SQLite and PostgreSQL: idempotent, order-proof, complete."""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import uuid
from pathlib import Path

import pytest
from sqlalchemy import Engine, delete, event, func, select
from sqlalchemy.engine import Connection

from consumer import store
from consumer.messages import Received, Refused
from consumer.pgcopy import copy_chunks
from consumer.refusals import ROW_COST, kept_bytes
from consumer.store import CHUNKS, SESSIONS, StoreWriter
from sshtrail import events as ev
from sshtrail import interrupted, queries, transferqueries
from sshtrail.chain import ChainWriter, Status
from sshtrail.db import make_engine
from sshtrail.errors import DatabaseError, UnstorableError
from sshtrail.tables import REFUSED_CHUNKS
from sshtrail.verification import verify_session
from sshtrail.wire import decode_chunk
from tests.support import sftpwire
from tests.support.recordings import SIGNER, events_session, recording

pytestmark = pytest.mark.integration

NOW = dt.datetime(2026, 11, 25, 12, 0, tzinfo=dt.UTC)
SIGNER_KEY = SIGNER.public_key().public_bytes_raw()


def received(messages: list[bytes], first_offset: int = 0, at: dt.datetime = NOW) -> list[Received]:
    return [Received(decode_chunk(m), 0, first_offset + i, at) for i, m in enumerate(messages)]


def session_row(store_engine: Engine, session_id: uuid.UUID) -> dict[str, object]:
    with store_engine.connect() as conn:
        row = conn.execute(select(SESSIONS).where(SESSIONS.c.id == session_id)).mappings().one()
    return dict(row)


def stored(store_engine: Engine, session_id: uuid.UUID) -> list[tuple[int, bytes]]:
    with store_engine.connect() as conn:
        query = select(CHUNKS.c.seq, CHUNKS.c.data).where(CHUNKS.c.session_id == session_id)
        return [(seq, data) for seq, data in conn.execute(query.order_by(CHUNKS.c.seq))]


def test_a_closed_session_is_stored_whole_with_its_outcome(store_engine: Engine) -> None:
    sid, messages = recording(chunks=5, exit_status=3)
    result = StoreWriter(store_engine, dt.timedelta(hours=1)).write(received(messages))
    assert (result.written, result.duplicates) == (5, 0)
    row = session_row(store_engine, sid)
    assert row["status"] == "closed"
    assert row["exit_status"] == 3
    assert row["operator"] == "alice"
    assert row["target"] == "t1"
    assert (row["request"], row["command"]) == ("exec", "uptime")
    assert row["chunk_count"] == 5
    assert row["last_seq"] == 4
    assert row["gaps"] == []
    assert row["verified"] is True
    assert row["bytes_out"] == 300
    assert row["end_reason"] == "closed by client"
    assert row["started_at"] is not None
    assert row["ended_at"] is not None
    assert row["started_at"] <= row["ended_at"]  # type: ignore[operator]
    assert stored(store_engine, sid) == list(enumerate(messages))


def test_redelivery_changes_nothing(store_engine: Engine) -> None:
    sid, messages = recording(chunks=4)
    writer = StoreWriter(store_engine, dt.timedelta(hours=1))
    writer.write(received(messages))
    before = session_row(store_engine, sid)
    again = writer.write(received(messages[1:3] + messages, first_offset=10))
    assert (again.written, again.duplicates) == (0, 6)
    assert session_row(store_engine, sid) == before
    assert stored(store_engine, sid) == list(enumerate(messages))


def test_gaps_are_listed_and_cleared_when_filled_in_any_order(store_engine: Engine) -> None:
    sid, messages = recording(chunks=7)
    writer = StoreWriter(store_engine, dt.timedelta(hours=1))
    writer.write(received([messages[i] for i in (6, 0, 3)]))  # end first, then start
    row = session_row(store_engine, sid)
    assert row["status"] == "incomplete"
    assert row["gaps"] == [[1, 2], [4, 5]]
    assert row["operator"] == "alice"  # start after end still fills the metadata
    writer.write(received([messages[i] for i in (5, 1)]))
    assert session_row(store_engine, sid)["gaps"] == [[2, 2], [4, 4]]
    writer.write(received([messages[4], messages[2]]))
    row = session_row(store_engine, sid)
    assert (row["status"], row["gaps"], row["chunk_count"]) == ("closed", [], 7)
    assert row["verified"] is True  # checked from the stored chunks, as they came unordered


def test_chunks_missing_before_the_first_one_seen_are_a_gap(store_engine: Engine) -> None:
    sid, messages = recording(chunks=4)
    StoreWriter(store_engine, dt.timedelta(hours=1)).write(received(messages[2:]))
    row = session_row(store_engine, sid)
    assert (row["status"], row["gaps"], row["operator"]) == ("incomplete", [[0, 1]], None)


def test_a_broken_link_is_stored_but_not_verified(store_engine: Engine) -> None:
    sid, messages = recording(chunks=4)
    _, other = recording(chunks=4)
    forged = decode_chunk(other[2])  # right seq, wrong session: will not link
    assert forged.seq == 2
    writer = StoreWriter(store_engine, dt.timedelta(hours=1))
    batch = received(messages)
    batch[2] = Received(decode_chunk(_rekey(other[2], sid)), 0, 2, NOW)
    writer.write(batch)
    row = session_row(store_engine, sid)
    assert row["status"] == "closed"
    assert row["verified"] is False


def _rekey(message: bytes, session_id: uuid.UUID) -> bytes:
    """The same chunk claimed for another session (the id sits right after the header)."""
    index = message.index(decode_chunk(message).session_id.bytes)
    return message[:index] + session_id.bytes + message[index + 16 :]


def test_a_silent_session_without_an_end_is_marked_interrupted_by_the_store(
    store_engine: Engine,
) -> None:
    sid, messages = recording(chunks=5)
    clock = [NOW]
    writer = StoreWriter(store_engine, dt.timedelta(minutes=5), clock=lambda: clock[0])
    writer.write(received(messages[:3], at=NOW))
    writer.housekeeping(frozenset({0}))
    assert session_row(store_engine, sid)["status"] == "active"
    clock[0] = NOW + dt.timedelta(minutes=6)
    # Its partition not read to its end: its chunks may be waiting, it is not silent.
    writer.housekeeping(frozenset())
    writer.housekeeping(frozenset({1, 2}))
    assert session_row(store_engine, sid)["status"] == "active"
    writer.housekeeping(frozenset({0}))
    row = session_row(store_engine, sid)
    assert (row["status"], row["interrupted_at"], row["end_reason"]) == (
        "interrupted",
        clock[0],
        None,
    )
    last_event = decode_chunk(messages[2]).events[-1].t
    started = row["started_at"]
    assert isinstance(started, dt.datetime)
    assert row["ended_at"] == started + dt.timedelta(microseconds=last_event // 1000)
    assert (row["bytes_in"], row["bytes_out"]) == (0, 200)  # as recorded so far
    with store_engine.connect() as conn:
        verdict = verify_session(conn, queries.session(conn, sid), [SIGNER_KEY])
    assert (verdict.status, verdict.interrupted) == (Status.UNSIGNED, "store")
    assert "marked interrupted by the store" in verdict.detail
    assert "not signed by the gateway" in verdict.detail
    writer.write(received(messages[3:4], first_offset=3, at=clock[0]))  # it was only slow
    row = session_row(store_engine, sid)
    # The mark no longer stands; when it was made stays on record.
    assert (row["status"], row["interrupted_at"], row["ended_at"]) == ("active", clock[0], None)
    with store_engine.connect() as conn:
        again = verify_session(conn, queries.session(conn, sid), [SIGNER_KEY])
    assert (again.status, again.interrupted) == (Status.UNSIGNED, None)
    said = interrupted.summary(None, clock[0], None)
    assert said is not None
    assert said.startswith("no: the store had marked it interrupted at ")
    writer.write(received(messages[4:], first_offset=4, at=clock[0]))
    assert session_row(store_engine, sid)["status"] == "closed"


def test_the_gateways_end_after_the_store_gave_up_stands_and_says_so(
    store_engine: Engine,
) -> None:
    """The gateway came back after the timeout: its signed end wins over the store's mark."""
    sid, messages = recording(chunks=5)
    clock = [NOW]
    writer = StoreWriter(store_engine, dt.timedelta(minutes=5), clock=lambda: clock[0])
    writer.write(received(messages[:3], at=NOW))
    clock[0] = NOW + dt.timedelta(minutes=10)
    writer.housekeeping(frozenset({0}))
    marked = session_row(store_engine, sid)
    assert marked["status"] == "interrupted"
    last = decode_chunk(messages[2])
    chain = ChainWriter(sid, SIGNER, seq=3, prev=last.digest)
    heard = NOW + dt.timedelta(minutes=1)
    reason = interrupted.gateway_reason(heard, 2, clock[0])
    end = ev.End(last.events[-1].t, reason, 7, 100, 4, chain.public_key)
    writer.write(received([chain.encode([end])], first_offset=3, at=clock[0]))
    row = session_row(store_engine, sid)
    assert (row["status"], row["end_reason"], row["verified"]) == ("interrupted", reason, True)
    assert row["interrupted_at"] == marked["interrupted_at"]  # the record says so
    assert (row["bytes_in"], row["bytes_out"]) == (7, 100)  # the gateway's word
    with store_engine.connect() as conn:
        verdict = verify_session(conn, queries.session(conn, sid), [SIGNER_KEY])
    assert (verdict.status, verdict.interrupted) == (Status.OK, "gateway")
    assert verdict.detail == f"4 chunks, signature valid; {reason}"
    said = interrupted.summary(row["end_reason"], row["interrupted_at"], row["ended_at"])  # type: ignore[arg-type]
    assert said is not None
    assert "signed end" in said
    assert "store had marked it interrupted" in said


def test_long_text_is_cut_to_the_column_not_refused(store_engine: Engine) -> None:
    sid, messages = recording(operator="x" * 4000)
    StoreWriter(store_engine, dt.timedelta(hours=1)).write(received(messages))
    assert session_row(store_engine, sid)["operator"] == "x" * 255


def test_many_sessions_in_one_batch(store_engine: Engine) -> None:
    sessions = [recording(chunks=3) for _ in range(700)]  # more than one IN (...) list
    batch = [r for _, messages in sessions for r in received(messages)]
    result = StoreWriter(store_engine, dt.timedelta(hours=1)).write(batch)
    assert result.written == 2100
    with store_engine.connect() as conn:
        closed = conn.execute(
            select(func.count()).select_from(SESSIONS).where(SESSIONS.c.status == "closed")
        ).scalar_one()
    assert closed == 700


def test_deleted_rows_are_restored_by_writing_again(store_engine: Engine) -> None:
    sid, messages = recording(chunks=4)
    writer = StoreWriter(store_engine, dt.timedelta(hours=1))
    writer.write(received(messages))
    before = session_row(store_engine, sid)
    with store_engine.begin() as conn:
        conn.execute(delete(CHUNKS).where(CHUNKS.c.session_id == sid))
        conn.execute(delete(SESSIONS).where(SESSIONS.c.id == sid))
    writer.write(received(messages))
    assert session_row(store_engine, sid) == before


def test_a_database_error_is_retryable_and_writes_nothing(
    store_engine: Engine, tmp_path: Path
) -> None:
    _, messages = recording(chunks=3)
    if store_engine.dialect.name == "sqlite":
        (tmp_path / "a-directory").mkdir()
        away = f"sqlite:///{tmp_path / 'a-directory'}"
    else:
        away = store_engine.url.set(database="sshtrail_no_such_db").render_as_string(False)
    broken = make_engine(away)
    with pytest.raises(DatabaseError, match="database write failed: OperationalError"):
        StoreWriter(broken, dt.timedelta(hours=1)).write(received(messages))
    broken.dispose()
    with store_engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(CHUNKS)).scalar_one() == 0


def test_a_batch_rolled_back_on_a_fresh_connection_leaves_the_next_one_working(
    store_engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PostgreSQL's staging table is created in the first batch's transaction; a
    rollback takes it away, and the writer must notice (one connection here)."""
    engine = make_engine(store_engine.url.render_as_string(False), pool_size=1, max_overflow=0)
    writer = StoreWriter(engine, dt.timedelta(hours=1))
    first_sid, first = recording(chunks=3)

    def fail(*_: object) -> None:
        raise RuntimeError("failed after the chunks were staged")

    with monkeypatch.context() as patch:
        patch.setattr(StoreWriter, "_update_sessions", fail)
        with pytest.raises(RuntimeError, match="staged"):
            writer.write(received(first))
    assert stored(engine, first_sid) == []
    second_sid, second = recording(chunks=2)
    for sid, messages in ((first_sid, first), (second_sid, second)):
        assert writer.write(received(messages)).written == len(messages)
        assert stored(engine, sid) == list(enumerate(messages))
    engine.dispose()


def test_a_connection_the_server_ends_mid_batch_is_a_retryable_error_and_the_next_works(
    store_engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PostgreSQL stopping ends the connection in the middle of a batch: the next statement
    fails, SQLAlchemy invalidates the connection, and the rollback that follows must not
    trip over it (the staging table's bookkeeping once raised PendingRollbackError there,
    which no retry catches, and the member died)."""
    if store_engine.dialect.name != "postgresql":
        pytest.skip("a server ending a connection is PostgreSQL's case")
    # As the store member opens it: no test of the connection before each batch.
    url = store_engine.url.render_as_string(False)
    engine = make_engine(url, pre_ping=False, pool_size=1, max_overflow=0)
    writer = StoreWriter(engine, dt.timedelta(hours=1))
    sid, messages = recording(chunks=4)
    assert writer.write(received(messages[:2])).written == 2

    def copy_then_lose_the_server(
        conn: Connection, chunks: list[Received]
    ) -> set[tuple[uuid.UUID, int]]:
        new = copy_chunks(conn, chunks)
        with store_engine.connect() as admin:
            backend = conn.exec_driver_sql("SELECT pg_backend_pid()").scalar_one()
            admin.exec_driver_sql(f"SELECT pg_terminate_backend({int(backend)})")
        return new

    with monkeypatch.context() as patch:
        patch.setattr(store, "copy_chunks", copy_then_lose_the_server)
        with pytest.raises(DatabaseError, match="database write failed: OperationalError"):
            writer.write(received(messages[2:]))
    assert writer.write(received(messages[2:])).written == 2
    assert stored(engine, sid) == list(enumerate(messages))
    engine.dispose()


def test_short_ids_stay_unique_as_sessions_keep_starting(store_engine: Engine) -> None:
    """UUIDv7 ids share their first 8 digits for 65 s; a short id printed for one
    session must still name it after more sessions started in that window."""
    writer = StoreWriter(store_engine, dt.timedelta(hours=1))
    first, messages = recording()
    writer.write(received(messages))
    with store_engine.connect() as conn:
        shown = queries.short_ids(conn, [first])[first]
    assert len(shown) == queries.MIN_PREFIX == 12
    later = []
    for _ in range(5):  # sessions started right after, in the same 65 s window
        session_id, messages = recording()
        writer.write(received(messages))
        later.append(session_id)
    # (Their first 8 digits are the first one's, but at a 65 s boundary: 8 would not do.)
    with store_engine.connect() as conn:
        assert queries.resolve(conn, shown) == first


def test_an_ambiguous_prefix_lists_a_session_without_a_start_time_too(
    store_engine: Engine,
) -> None:
    """A session whose first chunks never arrived has no start time; listing it as a
    candidate raised AttributeError (a traceback instead of the list)."""
    writer = StoreWriter(store_engine, dt.timedelta(hours=1))
    headless, messages = recording(chunks=4)
    writer.write(received(messages[2:]))
    whole, messages = recording()
    writer.write(received(messages))
    differs = next(i for i in range(32) if headless.hex[i] != whole.hex[i])
    common = headless.hex[:differs]  # a prefix both sessions share
    with store_engine.connect() as conn, pytest.raises(queries.NotFound) as raised:
        queries.resolve(conn, common)
    lines = str(raised.value).splitlines()
    assert f"  {headless.hex}  ?@?  -" in lines
    assert any(line.startswith(f"  {whole.hex}  alice@t1  ") for line in lines)


def _sftp_session(*streams: tuple[str, bytes]) -> tuple[uuid.UUID, list[bytes]]:
    chunk: list[ev.Event] = []
    for t, (side, data) in enumerate(streams, start=1):
        chunk.append(ev.Input(t, data) if side == "c" else ev.Output(t, data))
    parts = [chunk[:2], chunk[2:]] if len(chunk) > 2 else [chunk]
    return events_session(parts, term="", request=("subsystem", b"sftp"))


def test_transfers_are_read_once_the_session_is_whole_in_any_order(store_engine: Engine) -> None:
    content = os.urandom(70_000)
    sid, messages = _sftp_session(
        ("c", sftpwire.INIT), ("s", sftpwire.VERSION), *sftpwire.upload_stream("/up", content)
    )
    writer = StoreWriter(store_engine, dt.timedelta(hours=1))
    writer.write(received([messages[0], messages[3]]))  # the end before the middle
    assert session_row(store_engine, sid)["transfers"] is None  # a gap: not yet
    assert writer.background(1.0) is False
    writer.write(received(messages[1:3], first_offset=9))
    assert session_row(store_engine, sid)["transfers"] == "pending"
    assert writer.background(1.0) is False
    row = session_row(store_engine, sid)
    assert (row["transfers"], row["transfers_error"]) == ("done", None)
    with store_engine.connect() as conn:
        [upload] = transferqueries.list_transfers(
            conn, transferqueries.TransferFilter(session_id=sid)
        )
    assert (upload["op"], upload["path"], upload["size"]) == ("upload", "/up", 70_000)
    assert upload["sha256"] == hashlib.sha256(content).hexdigest()


def test_a_garbled_transfer_is_marked_and_the_rest_goes_on(store_engine: Engine) -> None:
    sid, messages = _sftp_session(
        ("c", sftpwire.INIT),
        ("s", sftpwire.VERSION),
        ("c", sftpwire.path_request(13, 1, "/gone")),
        ("s", sftpwire.status(1)),
        ("c", b"\x00\x00\x00\x05\x0d\x00\x00\x00\x02"),  # a remove without its path
    )
    other, more = _sftp_session(("c", sftpwire.INIT), ("s", sftpwire.VERSION))
    writer = StoreWriter(store_engine, dt.timedelta(hours=1))
    writer.write(received(messages + more))
    assert writer.background(5.0) is False
    row = session_row(store_engine, sid)
    assert row["transfers"] == "failed"
    assert "a packet ends inside one of its fields" in str(row["transfers_error"]), row
    with store_engine.connect() as conn:
        kept = transferqueries.list_transfers(conn, transferqueries.TransferFilter(session_id=sid))
    assert [(r["op"], r["path"]) for r in kept] == [("remove", "/gone")]  # read up to there
    assert session_row(store_engine, other)["transfers"] == "done"


def _exec_session(command: bytes, *streams: tuple[str, bytes]) -> tuple[uuid.UUID, list[bytes]]:
    events = [
        ev.Input(t, data) if side == "c" else ev.Output(t, data)
        for t, (side, data) in enumerate(streams, start=1)
    ]
    return events_session([events], term="", request=("exec", command))


def test_transfers_are_told_by_their_bytes_whatever_ran_them(store_engine: Engine) -> None:
    """Issue 41: an scp whose name the words cannot see (``$S``), and SFTP from an
    ``exec`` of the server's path, are read; an ordinary command is no transfer; bytes
    that look like SFTP but end inside its INIT are marked, with the reason."""
    content = os.urandom(5_000)
    scp, scp_messages = _exec_session(
        b"S=scp; exec $S -t /in",
        ("s", b"\0"),
        ("c", b"C0644 5000 a.bin\n"),
        ("s", b"\0"),
        ("c", content + b"\0"),
        ("s", b"\0"),
    )
    sftp, sftp_messages = _exec_session(
        b"exec /usr/lib/openssh/sftp-server",
        ("c", sftpwire.INIT),
        ("s", sftpwire.VERSION),
        *sftpwire.upload_stream("/up", content),
    )
    plain, plain_messages = _exec_session(b"cat", ("c", b"hello\n"), ("s", b"hello\n"))
    cut, cut_messages = _exec_session(b"cat", ("c", sftpwire.INIT[:6]))
    writer = StoreWriter(store_engine, dt.timedelta(hours=1))
    writer.write(received(scp_messages + sftp_messages + plain_messages + cut_messages))
    assert session_row(store_engine, plain)["transfers"] == "pending"  # its bytes are read
    assert writer.background(5.0) is False
    with store_engine.connect() as conn:
        for sid, path in ((scp, "/in/a.bin"), (sftp, "/up")):
            assert session_row(store_engine, sid)["transfers"] == "done"
            [upload] = transferqueries.list_transfers(
                conn, transferqueries.TransferFilter(session_id=sid)
            )
            assert (upload["op"], upload["path"], upload["size"]) == ("upload", path, 5_000)
            assert upload["sha256"] == hashlib.sha256(content).hexdigest()
    assert (
        session_row(store_engine, plain)["transfers"],
        session_row(store_engine, plain)["transfers_error"],
    ) == (None, None)
    row = session_row(store_engine, cut)
    assert (row["transfers"], row["transfers_error"]) == (
        "failed",
        "its bytes look like SFTP, but the session ended inside its INIT packet",
    )


def test_background_work_asks_the_database_only_when_a_session_may_wait(
    store_engine: Engine,
) -> None:
    statements: list[str] = []
    event.listen(store_engine, "before_cursor_execute", lambda *a: statements.append(a[2]))
    writer = StoreWriter(store_engine, dt.timedelta(hours=1))
    assert writer.background(1.0) is False  # at start: a backlog may wait
    asked = len(statements)
    assert asked
    writer.write(received(recording(chunks=3)[1]))  # a shell session: nothing to read
    after_write = len(statements)
    assert writer.background(1.0) is False
    assert len(statements) == after_write  # idle members do not poll the database
    assert asked <= after_write
    sid, messages = _sftp_session(("c", sftpwire.INIT), ("s", sftpwire.VERSION))
    writer.write(received(messages))
    assert writer.background(1.0) is False
    assert session_row(store_engine, sid)["transfers"] == "done"


def test_refused_chunks_are_kept_up_to_the_evidence_budget(store_engine: Engine) -> None:
    """A client producing forgeries without end cannot fill the store's database: the
    refused chunks are kept up to ``consumer.refused_chunks_max_mib``, the rest counted
    (the attack: 120 forgeries of 900 kB made 108 MB of evidence, and more each time)."""
    forged = [recording(3, 4000)[1] for _ in range(20)]  # 20 sessions, 3 chunks each
    refused = [
        Refused(item, "signed by SHA256:mallory, not a trusted gateway key")
        for n, messages in enumerate(forged)
        for item in received(messages, first_offset=n * 3)
    ]
    budget = 10 * (ROW_COST + 4200)  # about ten of them
    writer = StoreWriter(store_engine, dt.timedelta(hours=1), evidence_max_bytes=budget)
    writer.refuse(refused[:30])
    writer.refuse(refused[30:])
    with store_engine.connect() as conn:
        kept = conn.execute(select(func.count()).select_from(REFUSED_CHUNKS)).scalar()
        cost = kept_bytes(conn)
    assert kept is not None
    assert 5 <= kept < len(refused), kept
    assert cost <= budget
    assert writer.evidence.dropped == len(refused) - kept
    # Another member (a new writer) counts what is kept already.
    StoreWriter(store_engine, dt.timedelta(hours=1), evidence_max_bytes=budget).refuse(refused)
    with store_engine.connect() as conn:
        assert kept_bytes(conn) == cost


def test_a_chunk_the_database_refuses_is_the_chunks_fault_on_both_engines(
    store_engine: Engine,
) -> None:
    """What the database refuses of a chunk row raises UnstorableError (the runner then
    quarantines the session) -- also on PostgreSQL, whose chunks go in by COPY around
    SQLAlchemy: a raw psycopg error there crashed the store member instead."""
    with store_engine.begin() as conn:
        if store_engine.dialect.name == "postgresql":
            conn.exec_driver_sql(
                "CREATE FUNCTION refuse_seq_2() RETURNS trigger AS $$ BEGIN "
                "IF NEW.seq = 2 THEN RAISE check_violation USING MESSAGE = 'seq 2 refused'; "
                "END IF; RETURN NEW; END $$ LANGUAGE plpgsql"
            )
            conn.exec_driver_sql(
                "CREATE TRIGGER refuse_seq_2 BEFORE INSERT ON chunks "
                "FOR EACH ROW EXECUTE FUNCTION refuse_seq_2()"
            )
        else:
            conn.exec_driver_sql(
                "CREATE TRIGGER refuse_seq_2 BEFORE INSERT ON chunks WHEN NEW.seq = 2 "
                "BEGIN SELECT RAISE(ABORT, 'seq 2 refused'); END"
            )
    _, messages = recording(4, 100)
    writer = StoreWriter(store_engine, dt.timedelta(hours=1))
    with pytest.raises(UnstorableError, match="seq 2 refused"):
        writer.write(received(messages))
    writer.write(received(messages[:2]))  # the writer goes on with what it can store
