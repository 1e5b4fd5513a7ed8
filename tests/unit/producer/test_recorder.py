"""The recorder turns a session into chunks that decode, chain and verify."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from producer.recorder import Recorder
from sshtrail.chain import ChainWriter, Status, verify_chain
from sshtrail.events import (
    End,
    Event,
    Exec,
    Exit,
    Input,
    MaskedInput,
    Notice,
    Output,
    Resize,
    Start,
)
from sshtrail.ids import uuid7
from sshtrail.interrupted import KEEPALIVE
from sshtrail.wire import decode_chunk, encode_events, shape_problem

KEY = Ed25519PrivateKey.generate()
PUBLIC = KEY.public_key().public_bytes_raw()


class Sink:
    """Encodes each chunk as both recordings do (``gateway.recorder``): the events
    whole, on a writer thread; or encoded once by the relay's process and put into
    the body as they are by the recorder process. The two must be the same bytes."""

    def __init__(self) -> None:
        self.chunks: list[bytes] = []
        self.final: list[bool] = []
        self._whole: dict[uuid.UUID, ChainWriter] = {}
        self._encoded: dict[uuid.UUID, ChainWriter] = {}

    def submit(
        self, session_id: uuid.UUID, seq: int, events: list[Event], final: bool, size: int
    ) -> None:
        assert shape_problem(session_id, seq, events) is None
        whole = self._whole.setdefault(session_id, ChainWriter(session_id, KEY))
        encoded = self._encoded.setdefault(session_id, ChainWriter(session_id, KEY))
        chunk = whole.encode(events)
        assert encoded.encode_encoded(seq, encode_events(events), end=final) == chunk
        self.chunks.append(chunk)
        self.final.append(final)


class FakeTimer:
    def __init__(self, at: float, callback: Callable[[], None]) -> None:
        self.at, self.callback, self.cancelled = at, callback, False

    def cancel(self) -> None:
        self.cancelled = True


class Clock:
    """A monotonic clock and scheduler the test moves by hand."""

    def __init__(self) -> None:
        self.ns = 1_000_000_000
        self.timers: list[FakeTimer] = []

    def __call__(self) -> int:
        return self.ns

    def schedule(self, delay: float, callback: Callable[[], None]) -> FakeTimer:
        timer = FakeTimer(self.ns / 1e9 + delay, callback)
        self.timers.append(timer)
        return timer

    def advance(self, seconds: float) -> None:
        self.ns += int(seconds * 1e9)
        for timer in list(self.timers):
            if not timer.cancelled and timer.at <= self.ns / 1e9:
                self.timers.remove(timer)
                timer.callback()


START = Start(0, "alice", "127.0.0.1:5555", "t1", "127.0.0.1", 22, "root", "gw", "xterm", 80, 24, 1)


def recorder(sink: Sink, clock: Clock, echo_window: float | None = None, **kw: int) -> Recorder:
    return Recorder(
        START,
        KEY,
        sink,
        clock.schedule,
        session_id=uuid7(),
        max_bytes=kw.get("max_bytes", 65536),
        max_delay_s=0.1,
        echo_window_s=echo_window,
        clock=clock,
    )


def events_of(sink: Sink) -> list[Event]:
    return [event for chunk in sink.chunks for event in decode_chunk(chunk).events]


def test_start_and_request_flush_at_once_then_coalesce_for_100ms() -> None:
    sink, clock = Sink(), Clock()
    rec = recorder(sink, clock)
    assert sink.chunks == []
    rec.request("exec", b"uptime")
    assert len(sink.chunks) == 1
    assert [type(e) for e in decode_chunk(sink.chunks[0]).events] == [Start, Exec]
    rec.output(b"a")
    clock.advance(0.05)
    rec.output(b"b")
    assert len(sink.chunks) == 1
    clock.advance(0.06)
    assert len(sink.chunks) == 2
    assert [e.data for e in decode_chunk(sink.chunks[1]).events if isinstance(e, Output)] == [
        b"a",
        b"b",
    ]


def test_size_limit_cuts_chunks_and_large_output_is_split() -> None:
    sink, clock = Sink(), Clock()
    rec = recorder(sink, clock, max_bytes=4096)
    rec.request("shell", b"")
    rec.output(b"x" * 10_000)
    rec.close("closed")
    assert all(len(chunk) < 4096 + 512 for chunk in sink.chunks)
    data = b"".join(e.data for e in events_of(sink) if isinstance(e, Output))
    assert data == b"x" * 10_000


def test_close_signs_and_the_chain_verifies() -> None:
    sink, clock = Sink(), Clock()
    rec = recorder(sink, clock)
    rec.request("shell", b"")
    rec.input(b"exit\r")
    rec.resize(100, 30)
    rec.output(b"bye\r\n", stderr=True)
    rec.exit(status=3)
    clock.advance(0.01)
    rec.close("client closed")
    rec.close("again")  # idempotent
    assert sink.final == [False] * (len(sink.chunks) - 1) + [True]
    verdict = verify_chain(list(enumerate(sink.chunks)), {PUBLIC})
    assert verdict.status is Status.OK, verdict.detail
    events = events_of(sink)
    end = events[-1]
    assert isinstance(end, End)
    assert (end.bytes_in, end.bytes_out, end.chunks) == (5, 5, len(sink.chunks))
    assert any(isinstance(e, Resize) and (e.cols, e.rows) == (100, 30) for e in events)
    assert any(isinstance(e, Exit) and e.status == 3 for e in events)
    assert [e.t for e in events] == sorted(e.t for e in events)


def test_pty_session_masks_unechoed_input_and_never_emits_it() -> None:
    sink, clock = Sink(), Clock()
    rec = recorder(sink, clock, echo_window=0.5)
    rec.request("shell", b"")
    rec.output(b"Password: ")
    for char in b"s3cr3t":
        rec.input(bytes([char]))
        clock.advance(0.01)
    rec.input(b"\r")
    clock.advance(0.6)  # the window passes; the mask timer fires
    rec.output(b"\r\nwelcome\r\n")
    rec.close("closed")
    assert all(b"s3cr3t" not in chunk and b"s3c" not in chunk for chunk in sink.chunks)
    events = events_of(sink)
    assert sum(e.count for e in events if isinstance(e, MaskedInput)) == 6
    assert [e.data for e in events if isinstance(e, Input)] == [b"\r"]


@pytest.mark.parametrize("stderr", [False, True])
def test_output_streams_are_marked(stderr: bool) -> None:
    sink, clock = Sink(), Clock()
    rec = recorder(sink, clock)
    rec.request("exec", b"x")
    rec.output(b"o", stderr=stderr)
    rec.close("closed")
    [out] = [e for e in events_of(sink) if isinstance(e, Output)]
    assert out.stderr is stderr


def test_a_quiet_session_gets_a_keepalive_notice_a_busy_one_none() -> None:
    """The store group tells an idle session from one whose gateway is gone by these
    (``consumer.interrupted_after_s``): one per quiet period, none while data flows."""
    sink, clock = Sink(), Clock()
    rec = recorder(sink, clock)
    rec.request("shell", b"")
    rec.keepalive(60)
    assert len(sink.chunks) == 1  # just recorded: nothing to say
    for _ in range(10):  # busy: a chunk every 10 s
        clock.advance(10)
        rec.output(b"tick\r\n")
        clock.advance(0.2)
        rec.keepalive(60)
    assert not [e for e in events_of(sink) if isinstance(e, Notice)]
    clock.advance(59)
    rec.keepalive(60)
    clock.advance(0.2)
    assert not [e for e in events_of(sink) if isinstance(e, Notice)]
    clock.advance(1)
    rec.keepalive(60)
    clock.advance(0.2)  # the notice is coalesced like any event
    notices = [e for e in events_of(sink) if isinstance(e, Notice)]
    assert [(n.code, n.text) for n in notices] == [(KEEPALIVE, "")]
    rec.keepalive(60)  # and not again until the next quiet period
    clock.advance(0.2)
    assert len([e for e in events_of(sink) if isinstance(e, Notice)]) == 1
    rec.close("exit status 0")
    rec.keepalive(0)  # ended: nothing more
    assert verify_chain(list(enumerate(sink.chunks)), [PUBLIC]).status is Status.OK
