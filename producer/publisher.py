"""Publishes the spool to Kafka, in order, from a thread of its own.

The producer (a :class:`~sshtrail.kafka.ports.MessageProducer`) is driven
only from this thread, so asyncssh callbacks never wait for it. Every
chunk's delivery report is tracked; the spool is acknowledged up to the
first chunk not yet confirmed, so a restart re-publishes exactly what Kafka
may not have.

A producer that hits a fatal error (an idempotent producer whose sequence
state the broker lost) is unusable for good. librdkafka says so through its
error callback only -- a later ``produce`` may or may not raise it -- so the
adapter sets a flag that is checked every round: the producer is replaced
and publishing starts again from the first unconfirmed chunk; delivery
reports of the old one are ignored, consumers drop the chunks sent twice.

With a replay window (``gateway.spool.replay_window_s``, on by default only
with the embedded broker), the chunks acknowledged in the window before an
outage are published again when it ends -- and on start, unless the last
run stopped cleanly -- for brokers that lose acknowledged writes when they
crash (docs/decisions.md).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from typing import Any

from producer.spool import Spool, SpoolError
from producer.tails import Tails
from sshtrail.errors import BrokerError, QueueFull
from sshtrail.kafka.adapters import KafkaProducer
from sshtrail.kafka.config import client_config
from sshtrail.kafka.ports import BrokerEvent, Delivered, DeliveryError, MessageProducer
from sshtrail.settings import Settings

log = logging.getLogger(__name__)

#: Bytes handed to the producer but not yet confirmed; the rest waits in the spool.
MAX_IN_FLIGHT = 32 << 20
READ_BATCH = 1 << 20
BACKOFF_MAX = 30.0

#: Builds a producer; it reports broker events (unreachable, fatal) to the callback.
ProducerFactory = Callable[[Callable[[BrokerEvent], None]], MessageProducer]


def producer_config(settings: Settings) -> dict[str, Any]:
    """The producer settings the design fixes (docs/architecture.md, guarantee 1)."""
    return client_config(
        settings,
        **{
            "client.id": f"sshtrail-gateway-{settings.instance}",
            "enable.idempotence": True,
            "acks": "all",
            "partitioner": "murmur2_random",
            "compression.type": settings.kafka.compression,
            "linger.ms": 5,
            # Never give up on a chunk: while the broker is away, chunks wait here
            # (bounded below) and in the spool, and go out in order when it is back.
            "message.timeout.ms": 0,
            "queue.buffering.max.kbytes": 64 * 1024,
            "message.max.bytes": 2 << 20,
            # A frozen leader (a long GC pause, a hung disk) holds the requests sent
            # to it until this timeout, past the election of a new leader: librdkafka's
            # 60 s stalled publishing for a 30 s freeze; at 10 s the stall is about the
            # election time (tests/e2e/test_kafka_faults.py). [kafka.client] may set it.
            "socket.timeout.ms": settings.kafka.client.get("socket.timeout.ms", 10_000),
        },
    )


def replay_window(settings: Settings) -> int:
    """Seconds of acknowledged chunks published again after an outage: the setting, or
    30 with the embedded broker (which loses acknowledged writes when killed) and 0
    (every chunk exactly once in Kafka) with a configured Kafka."""
    chosen = settings.gateway.spool.replay_window_s
    if chosen >= 0:
        return chosen
    return 30 if settings.embedded_broker else 0


def kafka_producers(settings: Settings) -> ProducerFactory:
    """The gateway's producers, on librdkafka."""
    config = producer_config(settings)
    return lambda on_event: KafkaProducer(config, on_event)


class Publisher:
    """Tails the spool and produces each record to the sessions topic."""

    def __init__(
        self,
        spool: Spool,
        topic: str,
        make_producer: ProducerFactory,
        window_s: float = 0.0,
        tails: Tails | None = None,
    ) -> None:
        self._spool = spool
        #: Told of every record before it is produced (producer/tails.py).
        self._tails = tails
        self._topic = topic
        self._window = float(window_s)
        self._make_producer = make_producer
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._deadline = 0.0
        self._thread = threading.Thread(target=self._run, name="publisher", daemon=True)
        self._in_flight: OrderedDict[int, int] = OrderedDict()  # position -> next position
        self._confirmed: set[int] = set()
        self._refused: set[int] = set()  # answered with an error; sent again later
        self._failed = False
        self._generation = 0
        self._marks: deque[tuple[float, int]] = deque()  # (when, acked position)
        self._replay_from: int | None = None  # set when an outage begins
        self._rewind_to: int | None = None  # set when it ends
        self.renewals = 0
        self.delivered = 0
        self.errors = 0
        self.broker_reachable = True
        spool.on_append = self._wake.set

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float) -> bool:
        """Deliver what is spooled for up to ``timeout`` s; True if nothing is left."""
        self._deadline = time.monotonic() + timeout
        self._stopping.set()
        self._wake.set()
        self._thread.join(timeout + 5)
        return self._spool.pending == 0

    @property
    def in_flight_bytes(self) -> int:
        """Bytes handed to the producer and not yet confirmed."""
        if not self._in_flight:
            return 0
        return next(reversed(self._in_flight.values())) - next(iter(self._in_flight))

    # -- the thread ---------------------------------------------------------

    def _run(self) -> None:
        producer = self._make_producer(self._on_event)
        # After a crash, start with what is still on disk before the acknowledged
        # position too (the replay window kept by the last run): if the gateway
        # died with the broker, the broker may have lost those chunks. After a
        # clean stop, nothing the broker acknowledged is sent again.
        replay = self._window and not self._spool.stopped_cleanly
        cursor = self._spool.oldest if replay else self._spool.acked
        if cursor < self._spool.acked:
            log.info(
                "the last run did not stop cleanly: publishing again the %d bytes Kafka "
                "acknowledged shortly before it ended",
                self._spool.acked - cursor,
            )
        backoff = 0.5
        while True:
            if self._stopping.is_set() and (
                time.monotonic() >= self._deadline or self._spool.pending == 0
            ):
                break
            try:
                if producer.fatal is not None:
                    raise BrokerError(producer.fatal, fatal=True)
                cursor, backoff = self._step(producer, cursor, backoff)
            except BrokerError as exc:
                # A fatal error ends a producer for good: start a new one and publish
                # again from the first unconfirmed chunk (or the replay window).
                if not exc.fatal:
                    log.warning("publishing failed; retrying in %.1f s: %s", backoff, exc)
                    time.sleep(backoff)
                    backoff = min(backoff * 2, BACKOFF_MAX)
                producer, cursor = self._renew(str(exc)), self._replay_position()
            except Exception:  # a bug must not stop publishing for good: log, start over
                log.exception("the publisher failed; starting over in %.1f s", backoff)
                time.sleep(backoff)
                backoff = min(backoff * 2, BACKOFF_MAX)
                producer, cursor = self._renew("unexpected error"), self._spool.acked
        producer.flush(max(0.0, self._deadline - time.monotonic()))
        if self._spool.pending:
            log.warning(
                "stopping with %d bytes not yet in Kafka; they stay in the spool "
                "and are published on the next start",
                self._spool.pending,
            )

    def _renew(self, why: str) -> MessageProducer:
        log.error(
            "the Kafka producer is replaced (%s); publishing again from spool position %d",
            why,
            self._spool.acked,
        )
        self._generation += 1  # reports from the old producer are ignored from now on
        self._in_flight.clear()
        self._confirmed.clear()
        self._refused.clear()
        self._failed = False
        self.renewals += 1
        return self._make_producer(self._on_event)

    def _replay_position(self) -> int:
        """Where to publish from again: the position acknowledged a window ago."""
        if not self._window:
            return self._spool.acked
        horizon = time.monotonic() - self._window
        position = self._spool.acked
        for when, acked in reversed(self._marks):
            position = acked
            if when <= horizon:
                break
        return max(min(position, self._spool.acked), self._spool.oldest)

    def _keep_window(self) -> None:
        """Note the acknowledged position now and then; keep a window of it on disk."""
        if not self._window:
            return
        now, acked = time.monotonic(), self._spool.acked
        if not self._marks or now - self._marks[-1][0] >= 1.0:
            self._marks.append((now, acked))
        while len(self._marks) > 1 and self._marks[1][0] <= now - self._window:
            self._marks.popleft()
        self._spool.retain_from = self._marks[0][1]

    def _step(self, producer: MessageProducer, cursor: int, backoff: float) -> tuple[int, float]:
        """One round: retry after a refusal, or send what is spooled, then poll."""
        self._keep_window()
        if self._rewind_to is not None and not self._in_flight:
            position, self._rewind_to = max(self._rewind_to, self._spool.oldest), None
            log.info(
                "Kafka is back: publishing again the %d bytes it acknowledged in the "
                "%.0f s before the outage",
                self._spool.acked - position,
                self._window,
            )
            self._confirmed.clear()
            return position, backoff
        if self._failed and len(self._in_flight) == len(self._confirmed) + len(self._refused):
            # Something was refused and everything sent is answered: start over from
            # the first unconfirmed chunk (the spool's acknowledged position stopped
            # at the refused one).
            time.sleep(backoff)
            self._in_flight.clear()
            self._confirmed.clear()
            self._refused.clear()
            self._failed = False
            return self._spool.acked, min(backoff * 2, BACKOFF_MAX)
        sent_to = cursor if self._failed else self._send(producer, cursor)
        progressed = sent_to != cursor
        producer.poll(0 if progressed else 0.05)
        if not progressed and not self._in_flight:
            self._wake.wait(0.1)
            self._wake.clear()
        return sent_to, 0.5 if progressed else backoff

    def _send(self, producer: MessageProducer, cursor: int) -> int:
        """Produce spooled records from ``cursor``; returns where the next one starts."""
        if self.in_flight_bytes >= MAX_IN_FLIGHT:
            return cursor
        try:
            records = self._spool.read(cursor, READ_BATCH)
        except SpoolError:
            log.exception("cannot read the spool at %d", cursor)
            self._failed = True
            return cursor
        if self._tails is not None:
            self._tails.fold(records)
        for record in records:
            delivered = self._reporter(record.position, self._generation)
            try:
                producer.produce(self._topic, record.key, record.value, delivered)
            except QueueFull:
                break  # the producer's queue is full: poll, then carry on from here
            self._in_flight[record.position] = record.next_position
            cursor = record.next_position
        return cursor

    def _reporter(self, position: int, generation: int) -> Delivered:
        def delivered(error: DeliveryError | None) -> None:
            if generation != self._generation:
                return  # from a producer that was replaced; its chunks are sent again
            if error is not None:
                # Kept in flight: the acknowledged position must not pass it.
                self.errors += 1
                self._failed = True
                self._refused.add(position)
                log.error("chunk at spool position %d was refused by Kafka: %s", position, error)
                return
            self.delivered += 1
            if not self.broker_reachable:
                log.info("Kafka reachable again; publishing the spool")
                self.broker_reachable = True
                self._rewind_to, self._replay_from = self._replay_from, None
            self._confirmed.add(position)
            acked = None
            while self._in_flight and next(iter(self._in_flight)) in self._confirmed:
                first, acked = self._in_flight.popitem(last=False)
                self._confirmed.discard(first)
            if acked is not None:
                self._spool.ack(acked)

        return delivered

    def _on_event(self, event: BrokerEvent) -> None:
        if event.kind == "fatal":
            log.error("Kafka: fatal: %s (the producer is replaced)", event.detail)
        elif event.kind == "unreachable":
            if self.broker_reachable:
                log.warning("Kafka unreachable (%s); chunks are kept in the spool", event.detail)
                self._replay_from = self._replay_position() if self._window else None
            self.broker_reachable = False
        else:
            log.warning("Kafka: %s", event.detail)
