"""Watching active sessions in the browser: one Kafka reader per web process for all.

Every watcher of every session is served by one thread with one reader of
the sessions topic (joining no group, committing nothing). A new watcher's
session is found as ``sshtrail watch`` finds it: its partition from its id
(the key), its first chunk by the time in its UUIDv7 (so the screen is
complete from the start), then followed. When a watcher needs a partition
from further back than the reader is, the reader goes back; the watchers
already there skip what they have seen (chunk sequence numbers).

Each watcher gets the events of its session, chunk by chunk, on its own
bounded queue on the web server's event loop, once its gateway's signature is
checked (``sshtrail/provenance.py``: a forged chunk is logged and passed over,
so the real chunk with that seq is shown when it comes); a watcher that falls that far
behind is told so and dropped, never slowing the others. With nobody
watching, the reader holds no partitions and waits.

A live view lives no longer than the sign-in that opened it: when that ends
(signed out, expired, pushed out), the WebSocket is closed with
:data:`SIGNED_OUT` and nothing more is sent on it, not even what was
already queued. Nor longer than the session: its end chunk closes it, and so
does the store marking it interrupted (its gateway gone without one,
:func:`end_when_given_up`).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import msgspec
from starlette.websockets import WebSocket

from consumer.watch import refused, start_of
from sshtrail.errors import BrokerError, WireError
from sshtrail.events import Event, Start
from sshtrail.exports import CastEvents, cast_header
from sshtrail.kafka.adapters import KafkaTopicReader, topic_reader
from sshtrail.kafka.resting import idle_check_s, rest_until_more
from sshtrail.provenance import provenance
from sshtrail.settings import Settings
from sshtrail.wire import decode_chunk

log = logging.getLogger(__name__)

#: Chunks a watcher may have waiting before it is dropped as too slow.
QUEUE_CHUNKS = 2000

#: The close code of a live view whose sign-in ended (4000-4999: the application's own).
SIGNED_OUT = 4401
#: How often a live view asks the store whether it gave the session up (interrupted).
STATUS_EVERY_S = 15.0

#: What a watcher's queue carries: a chunk's events, or the end (``None``: the
#: session ended; a string: why watching stopped).
Item = list[Event] | str | None


@dataclass(eq=False)
class Watcher:
    session_id: uuid.UUID
    queue: asyncio.Queue[Item]
    loop: asyncio.AbstractEventLoop
    key: bytes = b""
    partition: int = -1
    next_seq: int = 0
    #: The session ended (set by the reader's thread once its end was handed over).
    finished: bool = False
    #: The watcher went away, or was dropped as too slow (set on the watcher's loop).
    left: bool = False

    @property
    def done(self) -> bool:
        return self.finished or self.left

    def deliver(self, item: Item) -> None:
        """From the reader's thread: hand ``item`` to the watcher's loop."""
        self.loop.call_soon_threadsafe(self._put, item)

    def _put(self, item: Item) -> None:
        if self.left:
            return
        try:
            self.queue.put_nowait(item)
        except asyncio.QueueFull:
            self.left = True
            self.queue.get_nowait()  # room for the last word
            self.queue.put_nowait("this browser fell too far behind; open the page again")


class Ending:
    """The end of a live view from outside its session: the sign-in behind it ended
    (closed with :data:`SIGNED_OUT`), or the store gave the session up (its gateway is
    gone: closed as a session that ended). Said from any thread, awaited on the view's
    loop. :attr:`reason` is set at once, so a frame already on its way is held."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self.reason: str | None = None
        self.code = SIGNED_OUT
        self.reached: asyncio.Future[None] = loop.create_future()

    def end(self, reason: str, code: int = SIGNED_OUT) -> None:
        if self.reason is None:
            self.reason, self.code = reason, code
        self._loop.call_soon_threadsafe(self._wake)

    def happened(self) -> bool:
        return self.reason is not None

    def _wake(self) -> None:
        if not self.reached.done():
            self.reached.set_result(None)


class LiveHub:
    """The web process's one reader, shared by every watcher."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._topic = settings.kafka.topic
        self._provenance = provenance(settings, "live view")
        self._watchers: list[Watcher] = []
        self._joined: list[Watcher] = []
        self._lock = threading.Lock()
        self._changed = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        #: Kafka readers made so far: one, unless the broker went away in between.
        self.readers_made = 0

    def watch(self, session_id: uuid.UUID, loop: asyncio.AbstractEventLoop) -> Watcher:
        watcher = Watcher(session_id, asyncio.Queue(QUEUE_CHUNKS), loop)
        with self._lock:
            self._joined.append(watcher)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="live", daemon=True)
                self._thread.start()
        self._changed.set()
        return watcher

    def leave(self, watcher: Watcher) -> None:
        watcher.left = True
        self._changed.set()

    def close(self) -> None:
        self._stop.set()
        self._changed.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    # -- the reader's thread -----------------------------------------------------------

    def _run(self) -> None:
        reader: KafkaTopicReader | None = None
        positions: dict[int, int] = {}
        rest = idle_check_s(self._settings)
        while not self._stop.is_set():
            try:
                if reader is None:
                    reader = topic_reader(self._settings, "web-live", timeout=5.0)
                    self.readers_made += 1
                    positions = {}
                    with self._lock:  # a new reader: every watcher is taken in again
                        self._joined = self._watchers + self._joined
                        self._watchers = []
                    self._changed.set()
                if self._changed.is_set():
                    self._changed.clear()
                    self._regroup(reader, positions)
                if not self._watchers:
                    self._changed.wait(1.0)
                    continue
                messages = reader.consume(500, 0.05)
                for message in messages:
                    partition, offset = message.partition(), message.offset()
                    if partition is not None and offset is not None:
                        positions[partition] = offset + 1
                    self._dispatch(message.key() or b"", message.value() or b"")
                if not messages and rest:
                    rest_until_more(reader, self._topic, positions, rest, self._changed)
            except (BrokerError, ArithmeticError, LookupError, ValueError) as exc:
                # Not only the broker's errors: a watcher must never wait on a reader
                # thread that died (a topic's metadata read while it was being made).
                self._tell_failure(exc)
                if reader is not None:
                    reader.close()
                    reader = None
                self._changed.set()
                self._stop.wait(2.0)
        if reader is not None:
            reader.close()

    def _tell_failure(self, exc: Exception) -> None:
        """Log why the reader is made again, and tell every watcher."""
        if isinstance(exc, BrokerError):
            log.warning("live view: %s; trying again", exc)
            problem = f"the broker cannot be read ({exc})"
        else:
            log.exception("live view: unexpected error; starting the reader again")
            problem = f"the live view's reader failed ({type(exc).__name__})"
        for watcher in self._all():
            watcher.deliver(f"{problem}; trying again")

    def _all(self) -> list[Watcher]:
        with self._lock:
            return self._watchers + self._joined

    def _regroup(self, reader: KafkaTopicReader, positions: dict[int, int]) -> None:
        """Take in new watchers (going back where one needs it), let go of the gone."""
        with self._lock:
            # Left in ``_joined`` until taken in: a broker error while looking for where
            # they start (this raises, the loop retries) must not lose them.
            joined = list(self._joined)
            self._watchers = [w for w in self._watchers if not w.done]
        count = len(reader.partitions(self._topic))
        starts = {}
        for watcher in joined:
            starts[id(watcher)] = start_of(reader, self._topic, watcher.session_id, count)
        for watcher in joined:
            watcher.partition, start = starts[id(watcher)]
            positions[watcher.partition] = min(positions.get(watcher.partition, start), start)
        with self._lock:
            self._joined = [w for w in self._joined if w not in joined]
            self._watchers += [w for w in joined if not w.done]
            wanted = {w.partition for w in self._watchers}
        for partition in list(positions):
            if partition not in wanted:
                del positions[partition]
        reader.assign(self._topic, positions)
        for watcher in joined:  # taken in: its chunks are now read
            watcher.key = str(watcher.session_id).encode()

    def _dispatch(self, key: bytes, value: bytes) -> None:
        watchers = [w for w in self._watchers if w.key == key and not w.done]
        if not watchers:
            return
        try:
            chunk = decode_chunk(value)
        except WireError:
            return  # the store's dead-letter topic has it; keep following
        if refused(chunk, self._provenance, "live view"):
            return  # not from a trusted gateway: the real chunk of that seq may follow
        for watcher in watchers:
            if chunk.seq < watcher.next_seq:
                continue  # seen already: the reader went back for another watcher
            watcher.next_seq = chunk.seq + 1
            watcher.deliver(list(chunk.events))
            if chunk.end is not None:
                watcher.deliver(None)
                watcher.finished = True
                self._changed.set()


async def stream_live(
    hub: LiveHub, websocket: WebSocket, session_id: uuid.UUID, ending: Ending
) -> None:
    """Send the session to the browser as asciicast v2 lines, one WebSocket message each,
    from its first event until it ends, the browser leaves or the sign-in ends."""
    watcher = hub.watch(session_id, asyncio.get_running_loop())
    converter = _Cast()
    closed = asyncio.ensure_future(_until_closed(websocket))
    try:
        while True:
            getting = asyncio.ensure_future(watcher.queue.get())
            waiting: set[asyncio.Future[Any]] = {getting, closed, ending.reached}
            done, _ = await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
            if closed in done:
                getting.cancel()
                return
            if ending.reason is not None:
                getting.cancel()
                await websocket.close(ending.code, ending.reason)
                return
            item = getting.result()
            if item is None:
                await websocket.close(1000)  # the session ended
                return
            if isinstance(item, str):
                if watcher.left:
                    await websocket.close(1011, item[:120])
                    return
                continue  # the broker is away for a moment; the reader tries again
            lines = converter.lines(item)
            for line in lines:
                if ending.happened():
                    break  # closed on the next turn, with the reason
                await websocket.send_text(line.decode())
    finally:
        hub.leave(watcher)
        closed.cancel()


class _Cast:
    """A session's events as asciicast v2 lines: the header first, then its events."""

    def __init__(self) -> None:
        self._events = CastEvents()
        self._header_sent = False

    def lines(self, events: list[Event]) -> list[bytes]:
        lines: list[bytes] = []
        for event in events:
            if not self._header_sent:
                lines.append(cast_header(event if isinstance(event, Start) else None))
                self._header_sent = True
                if isinstance(event, Start):
                    continue
            converted = self._events.convert(event)
            if converted is not None:
                t, (code, text) = converted
                lines.append(msgspec.json.encode([t, code, text]))
        return lines


async def end_when_given_up(
    given_up: Callable[[], Awaitable[bool]], ending: Ending, every_s: float = STATUS_EVERY_S
) -> None:
    """Ask the store every ``every_s`` whether it gave the session up: marked it
    interrupted, its gateway silent and gone without an end chunk for the view to see.
    Then the view ends as a session that ended, saying why."""
    while not ending.happened():
        await asyncio.sleep(every_s)
        try:
            gone = await given_up()
        except Exception:  # the store away for a moment: the view goes on, asks again
            log.debug("live view: the session's status cannot be read", exc_info=True)
            continue
        if gone:
            ending.end("interrupted: its gateway went silent (marked by the store)", 1000)


async def _until_closed(websocket: WebSocket) -> None:
    """Read (and drop) what the browser sends until it goes: nothing it says is used."""
    while True:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            return
