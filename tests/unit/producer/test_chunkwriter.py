"""The chunk writer spools chunks in the order given, off the event loop, within bounds."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path

import pytest

from producer.chunkwriter import ChunkWriter
from producer.spool import Spool
from sshtrail.ids import uuid7
from tests.support.waiting import wait_for


@pytest.fixture
def spool(tmp_path: Path) -> Iterator[Spool]:
    spool = Spool(tmp_path, 1 << 20, fsync_interval=0.01)
    spool.open()
    yield spool
    spool.close()


def test_chunks_are_spooled_in_the_order_given_and_stop_writes_the_rest(spool: Spool) -> None:
    sid = uuid7()
    writer = ChunkWriter(spool, lambda _: None, lambda _: None)
    writer.start()
    values = [b"chunk-%d" % i for i in range(200)]
    for value in values:
        writer.submit(sid, partial(bytes, value), final=False, size=len(value))
    writer.stop()
    records = spool.read(0, 1 << 20)
    assert [r.value for r in records] == values
    assert {r.key for r in records} == {str(sid).encode()}
    assert writer.queued_bytes == 0


def test_a_chunk_that_fails_to_encode_is_lost_alone(
    spool: Spool, caplog: pytest.LogCaptureFixture
) -> None:
    writer = ChunkWriter(spool, lambda _: None, lambda _: None)
    writer.start()

    def broken() -> bytes:
        raise ValueError("a bug in the recorder")

    writer.submit(uuid7(), lambda: b"before", final=False, size=6)
    writer.submit(uuid7(), broken, final=False, size=6)
    writer.submit(uuid7(), lambda: b"after", final=True, size=5)
    writer.stop()
    assert [r.value for r in spool.read(0, 1 << 20)] == [b"before", b"after"]
    assert writer.lost == 1
    assert "could not be encoded" in caplog.text


def test_far_behind_means_pause_until_half_caught_up(spool: Spool) -> None:
    notices: list[bool] = []
    from_thread: list[Callable[[], None]] = []
    gate = threading.Event()
    writer = ChunkWriter(spool, from_thread.append, notices.append, max_bytes=1000)
    writer.start()

    def slow() -> bytes:
        gate.wait(10)  # a stalled disk
        return b"x" * 400

    for _ in range(3):
        writer.submit(uuid7(), slow, final=False, size=400)
    assert notices == [True]  # at once, on the caller's (the loop's) side
    gate.set()
    wait_for(lambda: bool(from_thread), timeout=10, what="the writer's notice", every=0.01)
    for callback in from_thread:  # what the loop would run
        callback()
    assert notices == [True, False]
    writer.stop()
    assert len(spool.read(0, 1 << 20)) == 3


def test_a_chunk_submitted_after_stop_is_written_at_once(spool: Spool) -> None:
    """At shutdown a refused login can still be recorded after the writer stopped."""
    writer = ChunkWriter(spool, lambda _: None, lambda _: None)
    writer.start()
    writer.stop()
    writer.submit(uuid7(), partial(bytes, b"late refusal"), final=True, size=12)
    assert [r.value for r in spool.read(0, 1 << 20)] == [b"late refusal"]


def test_a_writer_never_started_writes_at_once_and_stops(spool: Spool) -> None:
    """A gateway that fails before it starts its writer still records what it refused
    (and stopping it has no thread to wait for)."""
    writer = ChunkWriter(spool, lambda _: None, lambda _: None)
    writer.submit(uuid7(), partial(bytes, b"early refusal"), final=True, size=13)
    writer.stop()
    assert [r.value for r in spool.read(0, 1 << 20)] == [b"early refusal"]
    assert writer.queued_bytes == 0
