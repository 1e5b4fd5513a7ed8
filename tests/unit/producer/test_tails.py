"""A restarted gateway ends the sessions it left open: once, signed, after their last chunk.

The chunks are real (the chain writer), the spool is real (its files, read back
after a "crash" that closes nothing), and the publisher runs on the in-memory
broker where Kafka matters: chunks it never acknowledged are published before
the end, and sessions whose first chunks the spool deleted are ended from the
tails saved before the deletion.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import uuid
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from producer.publisher import Publisher
from producer.spool import Spool
from producer.tails import FILE, Tails, end_left_open
from sshtrail import interrupted
from sshtrail.chain import ChainWriter, Status, verify_chain
from sshtrail.events import End, Event, Exec, Input, MaskedInput, Notice, Output, Start
from sshtrail.ids import uuid7
from sshtrail.wire import Chunk, chain_digest, decode_chunk
from tests.support.localbroker import LocalBroker
from tests.support.waiting import wait_for

KEY = Ed25519PrivateKey.generate()
PUBLIC = KEY.public_key().public_bytes_raw()
STARTED = 1_780_000_000_000_000_000  # ns since the epoch
NOW = dt.datetime(2026, 12, 6, 12, 0, tzinfo=dt.UTC)
TOPIC = "sessions"


class Session:
    """One session's chunks as a gateway spools them."""

    def __init__(self, spool: Spool) -> None:
        self.spool = spool
        self.id = uuid7()
        self.writer = ChainWriter(self.id, KEY)
        self.chunks: list[bytes] = []
        self.t = 0
        self.add(
            [Start(0, "alice", "10.0.0.1:5", "t1", "h", 22, "u", "gw", "xterm", 80, 24, STARTED)]
        )
        self.add([Exec(1, "shell", b"")])

    def add(self, events: list[Event]) -> None:
        chunk = self.writer.encode(events)
        self.chunks.append(chunk)
        self.t = events[-1].t
        self.spool.append(str(self.id).encode(), chunk)

    def typed(self, count: int, data: bytes = b"ls -l\r") -> None:
        for _ in range(count):
            self.t += 1_000_000
            self.add([Input(self.t, data), Output(self.t + 10, b"total 0\r\n" + data)])

    def close(self) -> None:
        end = End(self.t + 1, "exit status 0", 0, 0, self.writer.seq + 1, PUBLIC)
        self.add([end])


def opened(directory: Path, segment_bytes: int = 1 << 16) -> Spool:
    spool = Spool(directory, segment_bytes, fsync_interval=0.01, memory_bytes=0)
    spool.open()
    return spool


def restarted(directory: Path, segment_bytes: int = 1 << 16) -> tuple[Spool, list[uuid.UUID]]:
    """The spool as the next run finds it, and the sessions it ended on start."""
    spool = opened(directory, segment_bytes)
    return spool, end_left_open(spool, Tails(directory), KEY, NOW)


def ends_in(spool: Spool) -> dict[uuid.UUID, Chunk]:
    found = {}
    for record in spool.read(spool.oldest, 1 << 30):
        chunk = decode_chunk(record.value)
        if chunk.end is not None:
            found[chunk.session_id] = chunk
    return found


def test_a_session_left_open_gets_a_signed_end_that_follows_its_last_chunk(
    tmp_path: Path,
) -> None:
    spool = opened(tmp_path)
    open_, closed = Session(spool), Session(spool)
    open_.typed(3)
    open_.add([MaskedInput(open_.t + 5, 8), Notice(open_.t + 6, interrupted.KEEPALIVE, "")])
    closed.typed(2)
    closed.close()
    # kill -9: nothing is closed, nothing more is written

    again, ended = restarted(tmp_path)
    assert ended == [open_.id]  # the closed one is left alone
    end_chunk = ends_in(again)[open_.id]
    end = end_chunk.end
    assert end is not None
    last = decode_chunk(open_.chunks[-1])
    assert (end_chunk.seq, end_chunk.prev, end.chunks) == (last.seq + 1, last.digest, last.seq + 2)
    assert end.t == open_.t  # the last event recorded: when it was last heard from
    assert (end.bytes_in, end.bytes_out) == (3 * 6 + 8, 3 * (9 + 6))
    assert end.key == PUBLIC
    heard = dt.datetime.fromtimestamp((STARTED + end.t) / 1e9, dt.UTC)
    assert end.reason == interrupted.gateway_reason(heard, last.seq, NOW)
    verdict = verify_chain(
        [(n, chunk) for n, chunk in enumerate([*open_.chunks, end_chunk.raw])], [PUBLIC]
    )
    assert (verdict.status, verdict.interrupted) == (Status.OK, "gateway")
    assert verdict.detail.startswith(f"{last.seq + 2} chunks, signature valid; interrupted: ")


def test_a_second_restart_ends_nothing_again(tmp_path: Path) -> None:
    spool = opened(tmp_path)
    session = Session(spool)
    session.typed(2)
    _, ended = restarted(tmp_path)
    assert ended == [session.id]
    second, again = restarted(tmp_path)  # the first restart died before publishing anything
    assert again == []
    assert len([r for r in second.read(0, 1 << 30) if decode_chunk(r.value).end]) == 1


def test_a_clean_stop_leaves_nothing_to_end(tmp_path: Path) -> None:
    spool = opened(tmp_path)
    sessions = [Session(spool) for _ in range(3)]
    for session in sessions:
        session.typed(2)
        session.close()  # the shutdown closed every session (reason: shutting down)
    spool.close()
    _, ended = restarted(tmp_path)
    assert ended == []


def test_each_gateway_ends_only_the_sessions_in_its_own_spool(tmp_path: Path) -> None:
    mine, theirs = opened(tmp_path / "a"), opened(tmp_path / "b")
    one, other = Session(mine), Session(theirs)
    one.typed(1)
    other.typed(1)
    _, ended = restarted(tmp_path / "a")
    assert ended == [one.id]


@pytest.fixture
def broker() -> LocalBroker:
    found = LocalBroker()
    found.create_topic(TOPIC, 3)
    return found


def publishing(spool: Spool, tails: Tails, broker: LocalBroker) -> Publisher:
    spool.before_delete = tails.save
    publisher = Publisher(spool, TOPIC, broker.producer, 0.0, tails)
    publisher.start()
    return publisher


def crash(publisher: Publisher) -> None:
    """kill -9 as the spool sees it: the thread stops, nothing is closed or saved."""
    publisher._stopping.set()
    publisher._deadline = 0
    publisher._thread.join(5)


def test_chunks_kafka_never_acknowledged_are_published_before_the_end(
    tmp_path: Path, broker: LocalBroker
) -> None:
    spool = opened(tmp_path)
    publisher = publishing(spool, Tails(tmp_path), broker)
    session = Session(spool)
    session.typed(2)
    wait_for(lambda: spool.pending == 0, what="the first chunks in Kafka")
    broker.go_down()
    session.typed(3)  # spooled, never acknowledged
    crash(publisher)
    broker.come_back()

    again = opened(tmp_path)
    tails = Tails(tmp_path)
    assert end_left_open(again, tails, KEY, NOW) == [session.id]
    publisher = publishing(again, tails, broker)
    wait_for(lambda: again.pending == 0, what="the spool and the end in Kafka")
    publisher.stop(5)
    published = [decode_chunk(m.value() or b"") for m in broker.messages(TOPIC)]
    seqs = [chunk.seq for chunk in published]
    assert seqs[-1] == len(session.chunks)  # the end, after every chunk the last run left
    assert sorted(set(seqs)) == list(range(len(session.chunks) + 1))
    verdict = verify_chain({(c.seq, c.raw) for c in published}, [PUBLIC])
    assert (verdict.status, verdict.interrupted) == (Status.OK, "gateway")
    assert tails.open == {}  # the end, folded as it was published


def test_a_session_whose_first_chunks_the_spool_deleted_is_ended_whole(
    tmp_path: Path, broker: LocalBroker
) -> None:
    spool = opened(tmp_path, segment_bytes=1 << 16)
    publisher = publishing(spool, Tails(tmp_path), broker)
    quiet = Session(spool)
    quiet.typed(1)
    busy = Session(spool)
    for _ in range(40):  # segments fill, are delivered and deleted
        busy.add([Output(busy.t + 1, os.urandom(5000))])
        busy.t += 1
    wait_for(lambda: spool.pending == 0, what="everything in Kafka")
    first = decode_chunk(quiet.chunks[0])
    assert all(
        decode_chunk(r.value).session_id != quiet.id for r in spool.read(spool.oldest, 1 << 30)
    )
    assert (tmp_path / FILE).exists()
    crash(publisher)

    again, ended = restarted(tmp_path)
    assert set(ended) == {quiet.id, busy.id}
    end = ends_in(again)[quiet.id]
    assert end.prev == chain_digest(quiet.chunks[-1])
    assert end.end is not None
    assert (end.end.bytes_in, end.end.bytes_out) == (6, 9 + 6)
    assert ends_in(again)[busy.id].end.bytes_out == 40 * 5000  # type: ignore[union-attr]
    assert first.seq == 0


def test_a_session_whose_start_is_gone_without_saved_tails_is_left_to_the_store(
    tmp_path: Path, broker: LocalBroker, caplog: pytest.LogCaptureFixture
) -> None:
    spool = opened(tmp_path, segment_bytes=1 << 16)
    publisher = publishing(spool, Tails(tmp_path), broker)
    quiet = Session(spool)
    busy = Session(spool)
    for _ in range(40):
        busy.add([Output(busy.t + 1, os.urandom(5000))])
        busy.t += 1
    wait_for(lambda: spool.pending == 0, what="everything in Kafka")
    quiet.typed(1)  # its chunks 0 and 1 are gone, chunk 2 is on disk
    crash(publisher)
    (tmp_path / FILE).write_bytes(b"\x00\x00\x00\x00damaged")

    with caplog.at_level(logging.WARNING):
        again, ended = restarted(tmp_path)
    assert quiet.id not in ended
    assert quiet.id not in ends_in(again)
    assert "is damaged" in caplog.text
    assert f"session {quiet.id} was left open, but its first chunks" in caplog.text


def test_nothing_is_ended_when_kafka_has_chunks_the_disk_lost(tmp_path: Path) -> None:
    """A power loss: the acknowledged position saved is beyond the records on disk, so
    Kafka may hold a chunk this gateway would number again."""
    spool = opened(tmp_path)
    session = Session(spool)
    session.typed(2)
    spool.ack(spool.end)
    spool.close()
    segment = max(tmp_path.glob("segment-*.log"))
    segment.write_bytes(segment.read_bytes()[:-50])  # the last record torn
    _, ended = restarted(tmp_path)
    assert ended == []
