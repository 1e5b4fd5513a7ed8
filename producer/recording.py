"""Where a gateway's recorded chunks go: encoded, chained, signed, spooled, published.

The relay's side of recording -- the recorders on the event loop -- hands each
finished chunk to a :class:`Recording` as a numbered list of events. What
follows is the same work in either of two places (``gateway.recorder``):

* ``"process"`` (the default, ``producer/recordlink.py``): a recorder process
  of the gateway process's own, fed over a local socket. It holds the chains,
  the spool and the Kafka producer, so encoding, SHA-256, signatures, CRCs,
  the spool's writes and librdkafka never take the interpreter lock from the
  relay; the relay's process encodes the events once (MessagePack) and writes
  them to the socket.
* ``"thread"`` (:class:`InProcessRecording`): a writer thread and a publisher
  thread in the relay's own process, as before the recorder process existed.

Both keep the guarantees of docs/security.md: one session's chunks are chained
and signed in the order the recorder numbered them, spooled (fsync within
``fsync_interval_ms``, at once at a session's end) before they are published,
published in spool order; and when the work falls behind, the relay pauses
every channel instead of dropping anything (``on_behind``).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from producer.chunkwriter import ChunkWriter
from producer.publisher import Publisher, kafka_producers, replay_window
from producer.spool import Spool
from producer.tails import Tails, end_left_open
from sshtrail.errors import SshtrailError
from sshtrail.events import Event
from sshtrail.settings import Settings

log = logging.getLogger(__name__)

#: Told True when the recording is far behind the relay (pause every channel), False
#: once it has caught up; called on the event loop.
Behind = Callable[[bool], None]


@dataclass(frozen=True, slots=True)
class Figures:
    """What ``/metrics`` shows of the recording (``producer/metrics.py``)."""

    chunks_spooled: int = 0
    bytes_spooled: int = 0
    chunks_published: int = 0
    publish_errors: int = 0
    producer_replacements: int = 0
    kafka_reachable: bool = True
    #: Bytes recorded and not yet acknowledged by Kafka.
    pending: int = 0
    oldest_pending_s: float = 0.0
    #: Chunks that could not be encoded or spooled (logged each).
    lost: int = 0


class Recording(Protocol):
    """The recording side of one gateway process (see the module's text)."""

    def start(self, loop: asyncio.AbstractEventLoop, on_behind: Behind) -> Awaitable[None]:
        """Begin now: open the spool, end the sessions the last run left open, start
        publishing; done when the returned awaitable is, which raises
        :class:`~sshtrail.errors.SshtrailError` if the spool cannot be opened. (The
        gateway listens meanwhile; chunks handed over before then wait.)"""

    def submit(
        self, session_id: uuid.UUID, seq: int, events: list[Event], final: bool, size: int
    ) -> None:
        """:class:`~producer.recorder.ChunkSink` (event loop; never blocks)."""

    @property
    def pending(self) -> int:
        """Bytes recorded and not yet in Kafka, the chunks still on their way included
        (what the spool policy weighs)."""

    @property
    def queued_bytes(self) -> int:
        """Bytes handed over and not yet spooled."""

    def figures(self) -> Figures: ...

    async def stop(self, publish_s: float) -> bool:
        """Spool everything handed over, publish for up to ``publish_s``, close the
        spool; True when every chunk is in Kafka."""


def spool_parts(
    settings: Settings, directory: Path, signer: Ed25519PrivateKey
) -> tuple[Spool, Tails, Publisher]:
    """The spool in ``directory``, its tails and its publisher, as the settings say;
    started by :func:`open_spool`."""
    gw = settings.gateway
    spool = Spool(directory, gw.spool.segment_bytes, gw.spool.fsync_interval_ms / 1000)
    tails = Tails(spool.directory)
    spool.before_delete = tails.save
    publisher = Publisher(
        spool, settings.kafka.topic, kafka_producers(settings), replay_window(settings), tails
    )
    return spool, tails, publisher


def open_spool(spool: Spool, tails: Tails, publisher: Publisher, signer: Ed25519PrivateKey) -> None:
    """Open the spool; the sessions the last run left open (it stopped without ending
    them) are ended first, a signed end each after everything it spooled
    (``producer/tails.py``); then publish."""
    spool.open()
    end_left_open(spool, tails, signer, dt.datetime.now(dt.UTC))
    publisher.start()


class InProcessRecording:
    """``gateway.recorder = "thread"``: writer and publisher threads in this process."""

    def __init__(self, settings: Settings, directory: Path, signer: Ed25519PrivateKey) -> None:
        self._signer = signer
        self.spool, self._tails, self.publisher = spool_parts(settings, directory, signer)
        self._writer: ChunkWriter | None = None
        self._opened = False

    def start(self, loop: asyncio.AbstractEventLoop, on_behind: Behind) -> Awaitable[None]:
        started: asyncio.Future[None] = loop.create_future()
        try:
            open_spool(self.spool, self._tails, self.publisher, self._signer)
        except SshtrailError as exc:
            started.set_exception(exc)
            return started
        self._opened = True

        def tell(callback: Callable[[], None]) -> None:
            if not loop.is_closed():
                loop.call_soon_threadsafe(callback)

        self._writer = ChunkWriter(self.spool, self._signer, tell, on_behind)
        self._writer.start()
        started.set_result(None)
        return started

    def submit(
        self, session_id: uuid.UUID, seq: int, events: list[Event], final: bool, size: int
    ) -> None:
        assert self._writer is not None, "submit before start"
        self._writer.submit(session_id, seq, events, final, size)

    @property
    def pending(self) -> int:
        return self.spool.pending + self.queued_bytes

    @property
    def queued_bytes(self) -> int:
        return self._writer.queued_bytes if self._writer is not None else 0

    def figures(self) -> Figures:
        spool, publisher = self.spool, self.publisher
        return Figures(
            spool.appended_records,
            spool.appended_bytes,
            publisher.delivered,
            publisher.errors,
            publisher.renewals,
            publisher.broker_reachable,
            spool.pending,
            spool.oldest_pending_age(),
            self._writer.lost if self._writer is not None else 0,
        )

    async def stop(self, publish_s: float) -> bool:
        if not self._opened:
            return True
        loop = asyncio.get_running_loop()
        if self._writer is not None:
            await loop.run_in_executor(None, self._writer.stop)  # the last chunks spooled
        delivered = await loop.run_in_executor(None, self.publisher.stop, publish_s)
        self.spool.close()
        self._opened = False
        return delivered
