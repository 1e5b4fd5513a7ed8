"""The chunk writer spools chunks in the order given, off the event loop, within bounds."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from producer.chunkwriter import ChunkWriter
from producer.spool import Spool
from sshtrail.chain import Status, verify_chain
from sshtrail.events import End, Event, Output, Start
from sshtrail.ids import uuid7
from sshtrail.wire import decode_chunk
from tests.support.waiting import wait_for

KEY = Ed25519PrivateKey.generate()
PUBLIC = KEY.public_key().public_bytes_raw()


@pytest.fixture
def spool(tmp_path: Path) -> Iterator[Spool]:
    spool = Spool(tmp_path, 1 << 20, fsync_interval=0.01)
    spool.open()
    yield spool
    spool.close()


def start() -> list[Event]:
    return [Start(0, "alice", "10.0.0.1:5", "t1", "h", 22, "u", "gw", "", 0, 0, 1)]


def output(text: bytes, t: int = 1) -> list[Event]:
    return [Output(t, text)]


def end(chunks: int) -> list[Event]:
    return [End(9, "exit status 0", 0, 0, chunks, PUBLIC)]


def spooled_output(spool: Spool) -> list[bytes]:
    found = []
    for record in spool.read(0, 1 << 20):
        for event in decode_chunk(record.value).events:
            if isinstance(event, Output):
                found.append(event.data)
    return found


def test_chunks_are_spooled_in_the_order_given_and_stop_writes_the_rest(spool: Spool) -> None:
    sid = uuid7()
    writer = ChunkWriter(spool, KEY, lambda _: None, lambda _: None)
    writer.start()
    values = [b"chunk-%d" % i for i in range(200)]
    writer.submit(sid, 0, start(), final=False, size=64)
    for seq, value in enumerate(values, 1):
        writer.submit(sid, seq, output(value), final=False, size=len(value))
    writer.submit(sid, 201, end(202), final=True, size=64)
    writer.stop()
    assert spooled_output(spool) == values
    records = spool.read(0, 1 << 20)
    assert {r.key for r in records} == {str(sid).encode()}
    stored = [(seq, r.value) for seq, r in enumerate(records)]
    assert verify_chain(stored, {PUBLIC}).status is Status.OK
    assert writer.queued_bytes == 0


def test_a_chunk_that_fails_to_encode_is_lost_alone(
    spool: Spool, caplog: pytest.LogCaptureFixture
) -> None:
    writer = ChunkWriter(spool, KEY, lambda _: None, lambda _: None)
    writer.start()
    writer.submit(uuid7(), 0, [*start(), *output(b"before")], final=False, size=6)
    writer.submit(uuid7(), 0, output(b"no start: a bug in the recorder"), final=False, size=6)
    writer.submit(uuid7(), 0, [*start(), *output(b"after")], final=False, size=5)
    writer.stop()
    assert spooled_output(spool) == [b"before", b"after"]
    assert writer.lost == 1
    assert "could not be encoded" in caplog.text


class StalledSpool(Spool):
    """A spool on a disk that takes no writes until ``gate`` is set."""

    gate = threading.Event()

    def append(self, key: bytes, value: bytes) -> int:
        self.gate.wait(10)
        return super().append(key, value)


def test_far_behind_means_pause_until_half_caught_up(tmp_path: Path) -> None:
    spool = StalledSpool(tmp_path, 1 << 20, fsync_interval=0.01)
    spool.open()
    notices: list[bool] = []
    from_thread: list[Callable[[], None]] = []
    writer = ChunkWriter(spool, KEY, from_thread.append, notices.append, max_bytes=1000)
    writer.start()
    for _ in range(3):
        writer.submit(uuid7(), 0, [*start(), *output(b"x" * 400)], final=False, size=400)
    assert notices == [True]  # at once, on the caller's (the loop's) side
    spool.gate.set()
    wait_for(lambda: bool(from_thread), timeout=10, what="the writer's notice", every=0.01)
    for callback in from_thread:  # what the loop would run
        callback()
    assert notices == [True, False]
    writer.stop()
    assert len(spool.read(0, 1 << 20)) == 3
    spool.close()


def test_a_chunk_submitted_after_stop_is_written_at_once(spool: Spool) -> None:
    """At shutdown a refused login can still be recorded after the writer stopped."""
    writer = ChunkWriter(spool, KEY, lambda _: None, lambda _: None)
    writer.start()
    writer.stop()
    writer.submit(uuid7(), 0, [*start(), *output(b"late refusal")], final=False, size=12)
    assert spooled_output(spool) == [b"late refusal"]


def test_a_writer_never_started_writes_at_once_and_stops(spool: Spool) -> None:
    """A gateway that fails before it starts its writer still records what it refused
    (and stopping it has no thread to wait for)."""
    writer = ChunkWriter(spool, KEY, lambda _: None, lambda _: None)
    writer.submit(uuid7(), 0, [*start(), *output(b"early refusal")], final=False, size=13)
    writer.stop()
    assert spooled_output(spool) == [b"early refusal"]
    assert writer.queued_bytes == 0


def test_each_session_keeps_its_own_chain(spool: Spool) -> None:
    """Chunks of two sessions, interleaved, chain up per session."""
    writer = ChunkWriter(spool, KEY, lambda _: None, lambda _: None)
    writer.start()
    ids = [uuid7(), uuid7()]
    for sid in ids:
        writer.submit(sid, 0, start(), final=False, size=64)
    for seq in (1, 2):
        for sid in ids:
            writer.submit(sid, seq, output(b"%d" % seq), final=False, size=1)
    for sid in ids:
        writer.submit(sid, 3, end(4), final=True, size=64)
    writer.stop()
    chunks = [decode_chunk(r.value) for r in spool.read(0, 1 << 20)]
    by_session: dict[uuid.UUID, list[tuple[int, bytes]]] = {sid: [] for sid in ids}
    for chunk in chunks:
        by_session[chunk.session_id].append((chunk.seq, chunk.raw))
    for sid in ids:
        assert verify_chain(by_session[sid], {PUBLIC}).status is Status.OK


def test_a_recorder_process_not_yet_ready_weighs_the_spool_as_full(tmp_path: Path) -> None:
    """Until its recorder process says it is ready (it may wait for a spool another
    process holds), the gateway cannot know how full the spool is: the spool policy
    weighs it as beyond the reserve (no session starts, none is left unrecorded)
    instead of as empty."""
    from producer.admission import Admission, Refuse, SpoolState
    from producer.recordlink import UNKNOWN_PENDING, ProcessRecording
    from sshtrail.settings import load_settings

    settings = load_settings(environ={})
    recording = ProcessRecording(settings, tmp_path, KEY, tmp_path / "key")
    assert recording.pending == UNKNOWN_PENDING
    admission = Admission(settings.gateway)
    assert admission.spool_state(recording.pending) is SpoolState.RESERVE
    verdict = admission.recording(SpoolState.RESERVE)
    assert isinstance(verdict, Refuse)
    assert verdict.kind == "spool full"
