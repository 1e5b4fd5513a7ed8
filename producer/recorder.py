"""One session's recording: events in, signed hash-chained chunks out to a sink.

Events are coalesced into a chunk until it holds ``max_bytes`` or its oldest
event is ``max_delay`` old; the chunk with the start event and the one with
the end event are flushed at once. Callbacks from the SSH side only append
here and return. A finished chunk goes to the sink, numbered, as a list of
events: the sink encodes it (MessagePack, hash chain, signature) and spools it
where that work does not hold up the relay -- a recorder process
(``producer/recordlink.py``) or a writer thread (``producer/chunkwriter.py``),
in the order given.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from functools import partial
from typing import Protocol

import msgspec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from producer.masking import EchoMasker
from sshtrail.escrow import Sealer
from sshtrail.events import (
    End,
    Env,
    Event,
    Exec,
    ExecMode,
    Exit,
    Input,
    Notice,
    Output,
    Resize,
    Start,
)
from sshtrail.interrupted import KEEPALIVE


class ChunkSink(Protocol):
    """Where finished chunks go (to be encoded, chained, signed and spooled). Must not
    block."""

    def submit(
        self, session_id: uuid.UUID, seq: int, events: list[Event], final: bool, size: int
    ) -> None:
        """Take chunk ``seq`` of a session (0, 1, 2 ... in order; chunk 0 opens with the
        start event): its ``events``; ``final`` marks the session's last chunk, whose
        last event is the end; ``size`` estimates its bytes."""


class Timer(Protocol):
    def cancel(self) -> None: ...


#: Schedules ``callback`` after ``delay`` seconds (``loop.call_later`` in production).
Scheduler = Callable[[float, Callable[[], None]], Timer]

#: Per-event overhead in a chunk, for the size estimate (tag, t, framing).
_EVENT_OVERHEAD = 16


class Recorder:
    """Records one SSH session channel. Create it when the channel's request is known."""

    def __init__(
        self,
        start: Start,
        signer: Ed25519PrivateKey,
        sink: ChunkSink,
        schedule: Scheduler,
        *,
        session_id: uuid.UUID,
        max_bytes: int,
        max_delay_s: float,
        echo_window_s: float | None,
        sealer: Sealer | None = None,
        clock: Callable[[], int] = time.monotonic_ns,
    ) -> None:
        self.session_id = session_id
        self._clock = clock
        self._origin = clock()
        self._public_key = signer.public_key().public_bytes_raw()
        self._sink = sink
        self._schedule = schedule
        self._max_bytes = max_bytes
        self._max_delay_s = max_delay_s
        seal = partial(_seal, sealer, session_id) if sealer is not None else None
        self._masker = EchoMasker(int(echo_window_s * 1e9), seal) if echo_window_s else None
        self._pending: list[Event] = []
        self._pending_bytes = 0
        self._flush_timer: Timer | None = None
        self._mask_timer: Timer | None = None
        self._emitted = 0  # chunks handed to the sink
        self._last_emit = self._origin  # when the last one was (clock)
        self.bytes_in = 0
        self.bytes_out = 0
        self.ended = False
        self._add([start])  # flushed together with the request that follows

    def now(self) -> int:
        """Nanoseconds since the session started."""
        return self._clock() - self._origin

    def input(self, data: bytes) -> None:
        self.bytes_in += len(data)
        t = self.now()
        self._add(self._masker.input(t, data) if self._masker else [Input(t, data)])
        self._arm_mask_timer()

    def output(self, data: bytes, stderr: bool = False) -> None:
        self.bytes_out += len(data)
        t = self.now()
        if self._masker and not stderr:
            self._add(self._masker.output(t, data))
            self._arm_mask_timer()
        else:
            self._add([Output(t, data, stderr)])

    def said(self, data: bytes, *, stderr: bool = False) -> None:
        """Output the gateway itself wrote to the operator (the recording notice, a policy
        warning): recorded as output, but never taken for the echo of what they typed."""
        self._add_ordered(Output(self.now(), data, stderr))

    def resize(self, cols: int, rows: int, width_px: int = 0, height_px: int = 0) -> None:
        self._add_ordered(Resize(self.now(), cols, rows, width_px, height_px))

    def request(self, mode: ExecMode, command: bytes) -> None:
        self._add_ordered(Exec(self.now(), mode, command), urgent=True)

    def env(self, name: bytes, value: bytes | None, accepted: bool) -> None:
        """An environment variable the client sent (``value`` None: kept secret)."""
        self._add_ordered(Env(self.now(), name, value, accepted))

    def notice(self, code: str, text: str) -> None:
        """Something the gateway did or saw, for the auditor (a cut terminal size ...)."""
        self._add_ordered(Notice(self.now(), code[:4096], text[:4096]))

    def keepalive(self, after_s: float) -> None:
        """Record a keep-alive notice if nothing was recorded for ``after_s``: the session
        is open, only quiet (the store group tells it from one whose gateway is gone)."""
        quiet = self._clock() - self._last_emit >= after_s * 1e9
        if quiet and not self.ended and not self._pending:
            self.notice(KEEPALIVE, "")

    def exit(
        self,
        status: int | None = None,
        signal: str | None = None,
        core_dumped: bool = False,
        message: str = "",
    ) -> None:
        self._add_ordered(Exit(self.now(), status, signal, core_dumped, message[:4096]))

    def close(self, reason: str) -> None:
        """End the recording: flush everything with a signed end chunk. Idempotent."""
        if self.ended:
            return
        self.ended = True
        self._cancel_timers()
        events = [*self._pending, *(self._masker.flush() if self._masker else [])]
        self._pending, self._pending_bytes = [], 0
        *full, last = _split(events, self._max_bytes) or [[]]
        for part in full:
            self._emit(part, final=False)
        end = End(
            t=self.now(),
            reason=reason[:4096],
            bytes_in=self.bytes_in,
            bytes_out=self.bytes_out,
            chunks=self._emitted + 1,
            key=self._public_key,
        )
        self._emit([*last, end], final=True)

    # -- internals ---------------------------------------------------------

    def _add_ordered(self, event: Event, urgent: bool = False) -> None:
        """Add an event that does not go through the masker, after what it holds."""
        self._add(self._masker.passthrough(event) if self._masker else [event], urgent)

    def _add(self, events: list[Event], urgent: bool = False) -> None:
        if self.ended or not events:
            return
        self._pending.extend(events)
        self._pending_bytes += _size(events)
        if urgent or self._pending_bytes >= self._max_bytes:
            self._flush()
        elif self._flush_timer is None:
            self._flush_timer = self._schedule(self._max_delay_s, self._on_flush_timer)

    def _on_flush_timer(self) -> None:
        self._flush_timer = None
        self._flush()

    def _flush(self) -> None:
        if self._flush_timer is not None:
            self._flush_timer.cancel()
            self._flush_timer = None
        if self._pending and not self.ended:
            events, self._pending, self._pending_bytes = self._pending, [], 0
            for part in _split(events, self._max_bytes):
                self._emit(part, final=False)

    def _emit(self, events: list[Event], final: bool) -> None:
        seq, self._emitted = self._emitted, self._emitted + 1
        self._last_emit = self._clock()
        self._sink.submit(self.session_id, seq, events, final, _size(events))

    def _arm_mask_timer(self) -> None:
        if self._masker is None or self._mask_timer is not None:
            return
        deadline = self._masker.deadline
        if deadline is not None:
            delay = max(0.0, (deadline - self.now()) / 1e9)
            self._mask_timer = self._schedule(delay, self._on_mask_timer)

    def _on_mask_timer(self) -> None:
        self._mask_timer = None
        if self._masker is not None and not self.ended:
            self._add(self._masker.expire(self.now()))
            self._arm_mask_timer()

    def _cancel_timers(self) -> None:
        for timer in (self._flush_timer, self._mask_timer):
            if timer is not None:
                timer.cancel()
        self._flush_timer = self._mask_timer = None


def _size(events: list[Event]) -> int:
    """About how many bytes ``events`` take in a chunk."""
    return sum(len(getattr(event, "data", b"")) + _EVENT_OVERHEAD for event in events)


def _split(events: list[Event], max_bytes: int) -> list[list[Event]]:
    """Events cut into parts of about ``max_bytes``; one large output is cut too."""
    parts: list[list[Event]] = [[]]
    size = 0
    for event in events:
        data = getattr(event, "data", None)
        if isinstance(data, bytes) and len(data) > max_bytes and isinstance(event, Input | Output):
            for offset in range(0, len(data), max_bytes):
                piece = data[offset : offset + max_bytes]
                parts.append([msgspec.structs.replace(event, data=piece)])
            parts.append([])
            size = 0
            continue
        if size and size + len(data or b"") > max_bytes:
            parts.append([])
            size = 0
        parts[-1].append(event)
        size += len(data or b"") + _EVENT_OVERHEAD
    return [part for part in parts if part]


def _seal(sealer: Sealer, session_id: uuid.UUID, data: bytes, t: int) -> bytes:
    return sealer.seal(data, session_id, t)


def call_later(loop: asyncio.AbstractEventLoop) -> Scheduler:
    """A :data:`Scheduler` on an asyncio loop."""
    return loop.call_later
