"""The group runner both consumer groups share: consume, decode, write, dead-letter, commit.

One loop, the only user of the consumer, in this order for every batch
(docs/decisions.md, "Consumer runner"):

1. ``consume(batch_size, batch_wait)`` from the partitions this instance owns;
2. sort the messages into chunks and rejects (:mod:`consumer.messages`);
3. write the chunks through the group's :class:`Writer`, in one database
   transaction -- on a :class:`RetryableError` the assigned partitions are
   paused and the write retried with back-off while the loop keeps polling,
   so the group stalls without leaving the group and without skipping;
4. send the rejects to the dead-letter topic and wait for the broker's ack;
5. commit, synchronously, the offsets one past the batch.

Step 2 of the next batch runs in a helper thread while step 3 of this one
waits on the database. Nothing is committed before it is durable, so a
crash anywhere re-delivers;
the writers are idempotent on (session id, seq), so re-delivery changes nothing.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

from consumer.deadletter import DeadLetters
from consumer.messages import Batch, KafkaMessage, Received, sort_messages
from consumer.metrics import ConsumerMetrics
from sshtrail.errors import BrokerError, RetryableError
from sshtrail.kafka import client_config
from sshtrail.settings import Settings

log = logging.getLogger(__name__)
T = TypeVar("T")

#: How often the writer's housekeeping runs (marking silent sessions incomplete).
HOUSEKEEPING_INTERVAL_S = 30.0


@dataclass(frozen=True, slots=True)
class Written:
    """What a writer did with a batch."""

    written: int  # chunks new to the store
    duplicates: int  # chunks it already had


class Writer(Protocol):
    """A consumer group's destination. Called from the runner's thread only."""

    def write(self, chunks: Sequence[Received]) -> Written:
        """Write ``chunks`` in one transaction, idempotently on (session id, seq).

        Raises :class:`RetryableError` when the database is away; the runner
        then retries the same chunks later.
        """
        ...

    def housekeeping(self) -> None:
        """Periodic work between batches; may raise :class:`RetryableError`."""
        ...


class GroupRunner:
    """Runs one member of a consumer group until :meth:`stop`."""

    def __init__(
        self,
        settings: Settings,
        group: str,
        writer: Writer,
        metrics: ConsumerMetrics,
        *,
        consumer_factory: Callable[[dict[str, Any]], Consumer] = Consumer,
    ) -> None:
        self.settings = settings
        self.group = group
        self.topic = settings.kafka.topic
        self._writer = writer
        self._metrics = metrics
        options = settings.consumer
        self._batch_size = options.batch_size
        self._batch_wait = options.batch_wait_ms / 1000
        self._retry_initial = options.retry_initial_ms / 1000
        self._retry_max = max(options.retry_max_ms, options.retry_initial_ms) / 1000
        static = {"group.instance.id": options.instance_id} if options.instance_id else {}
        self._consumer = consumer_factory(
            client_config(
                settings,
                **static,
                **{
                    "group.id": group,
                    "client.id": f"{group}-{settings.instance}",
                    "enable.auto.commit": False,
                    "enable.auto.offset.store": False,
                    "auto.offset.reset": "earliest",
                    "partition.assignment.strategy": settings.assignment_strategy,
                    "max.poll.interval.ms": options.max_poll_interval_ms,
                    "session.timeout.ms": options.session_timeout_ms,
                    "max.partition.fetch.bytes": 4 << 20,
                    # The embedded broker answers a fetch with everything it has
                    # (docs/decisions.md); librdkafka must accept such a response.
                    "receive.message.max.bytes": 1 << 30,
                },
            )
        )
        self._dead_letters = DeadLetters(settings, group)
        self._stop = threading.Event()
        self._assigned: set[int] = set()
        self._committed: dict[int, int] = {}
        self._last_published: dict[int, float] = {}
        self._in_flight: Batch | None = None
        self._revoked_since_poll: set[int] = set()
        self._paused = False

    def stop(self) -> None:
        """Finish the batch in hand, commit it, leave the group. Safe from any thread."""
        self._stop.set()

    @property
    def assigned(self) -> frozenset[int]:
        return frozenset(self._assigned)

    def run(self) -> None:
        """Consume until stopped. Raises :class:`BrokerError` on a fatal Kafka error."""
        self._consumer.subscribe(
            [self.topic],
            on_assign=self._on_assign,
            on_revoke=self._on_revoke,
            on_lost=self._on_revoke,
        )
        log.info(
            "%s: joined the group, topic %s, %s assignment",
            self.group,
            self.topic,
            self.settings.assignment_strategy,
        )
        next_housekeeping = time.monotonic()
        # While batch N is written, batch N+1 is already fetched and decoded in a
        # helper thread: decoding is Python work, writing mostly waits on the
        # database. Only this thread touches the consumer; N+1 is written and
        # committed after N, so commits stay in order.
        decoder = ThreadPoolExecutor(1, thread_name_prefix=f"{self.group}-decode")
        pending: Batch | None = None
        try:
            while not self._stop.is_set():
                self._in_flight, self._revoked_since_poll = pending, set()
                wait = self._batch_wait if pending is None else 0.0
                messages = self._poll(self._batch_size, wait)
                decoding = decoder.submit(sort_messages, messages) if messages else None
                self._metrics.consumed(len(messages))
                if pending is not None:
                    self._handle(pending)
                pending = self._decoded(decoding)
                if time.monotonic() >= next_housekeeping:
                    self._retrying(self._writer.housekeeping, "housekeeping")
                    next_housekeeping = time.monotonic() + HOUSEKEEPING_INTERVAL_S
                self._report_lag()
            if pending is not None:  # the batch in hand is finished before leaving
                self._handle(pending)
        finally:
            decoder.shutdown(wait=True)
            self._close()

    def _decoded(self, decoding: Future[Batch] | None) -> Batch | None:
        """The next batch, without what partitions revoked since it was fetched sent."""
        if decoding is None:
            return None
        batch = decoding.result()
        gone = self._revoked_since_poll - self._assigned
        if gone:
            batch.drop_partitions(gone)
        return batch if len(batch) or batch.ends else None

    def _poll(self, count: int, timeout: float) -> list[KafkaMessage]:
        try:
            messages = self._consumer.consume(count, timeout)
        except KafkaException as exc:
            raise BrokerError(f"consume failed: {exc}") from None
        good: list[KafkaMessage] = []
        for message in messages:
            error = message.error()
            if error is None:
                good.append(message)
            elif error.fatal():
                raise BrokerError(f"fatal consumer error: {error}")
            elif error.code() != KafkaError._PARTITION_EOF:
                log.warning("%s: consumer error (librdkafka retries): %s", self.group, error)
        return good

    def _handle(self, batch: Batch) -> None:
        started = time.perf_counter()
        self._in_flight = batch
        try:
            result = self._retrying(lambda: self._writer.write(batch.good), "write")
            if result is None:  # stopping while the database is away: nothing committed
                return
            if batch.bad:
                sent = self._retrying(lambda: self._dead_letters.send(batch.bad), "dead-letter")
                if sent is None:  # stopping with the broker away: commit nothing
                    return
                self._metrics.dead_lettered(len(batch.bad))
            self._commit(batch)
        finally:
            self._in_flight = None
        self._metrics.batch_written(
            len(batch), result.written, result.duplicates, time.perf_counter() - started
        )
        for received in batch.good:
            self._last_published[received.partition] = received.published_at.timestamp()

    def _retrying(self, attempt: Callable[[], T], what: str) -> T | None:
        """Run ``attempt`` until it succeeds; None if stopped first.

        Between attempts the assigned partitions are paused and the consumer
        keeps polling: the member stays in the group (``max.poll.interval.ms``)
        and receives no new messages meanwhile.
        """
        delay = self._retry_initial
        while True:
            try:
                result = attempt()
            except RetryableError as exc:
                self._metrics.retry()
                log.warning("%s: %s failed, retrying in %.1fs: %s", self.group, what, delay, exc)
                self._pause()
                if self._wait(delay):
                    log.warning(
                        "%s: stopping with a batch not written; it will be re-delivered", self.group
                    )
                    return None
                delay = min(delay * 2, self._retry_max)
            else:
                self._resume()
                return result

    def _wait(self, seconds: float) -> bool:
        """Poll the paused consumer for ``seconds``; True if asked to stop meanwhile."""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0 and not self._stop.is_set():
            for message in self._poll(1, min(left, 0.5)):
                # A partition assigned during the pause is not paused yet: put
                # the message back so it is read again after the retry.
                partition, offset = message.partition(), message.offset()
                assert partition is not None
                assert offset is not None
                self._consumer.seek(TopicPartition(self.topic, partition, offset))
                self._pause()
        return self._stop.is_set()

    def _pause(self) -> None:
        partitions = self._consumer.assignment()
        if partitions:
            self._consumer.pause(partitions)
        self._paused = True

    def _resume(self) -> None:
        if self._paused:
            partitions = self._consumer.assignment()
            if partitions:
                self._consumer.resume(partitions)
            self._paused = False

    def _commit(self, batch: Batch) -> None:
        offsets = [
            TopicPartition(self.topic, partition, end)
            for partition, end in batch.ends.items()
            if partition in self._assigned
        ]
        if not offsets:
            return
        try:
            self._consumer.commit(offsets=offsets, asynchronous=False)
        except KafkaException as exc:
            # Typically a rebalance in progress: the next owner re-reads these
            # messages and the idempotent writer ignores them.
            self._metrics.commit_failed()
            log.warning("%s: commit refused, messages will be re-delivered: %s", self.group, exc)
            return
        for tp in offsets:
            self._committed[tp.partition] = tp.offset

    def _on_assign(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self._assigned.update(tp.partition for tp in partitions)
        log.info(
            "%s: assigned partitions %s", self.group, sorted(tp.partition for tp in partitions)
        )
        if self._paused and partitions:
            self._consumer.pause(partitions)

    def _on_revoke(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        gone = {tp.partition for tp in partitions}
        log.info("%s: partitions %s revoked", self.group, sorted(gone))
        self._revoked_since_poll |= gone
        # Every written batch is committed before the next consume(), so only
        # a batch still waiting for the database can be in flight: abandon its
        # messages from these partitions; their new owner reads them again.
        if self._in_flight is not None:
            self._in_flight.drop_partitions(gone)
        self._assigned -= gone
        for partition in gone:
            self._committed.pop(partition, None)
            self._last_published.pop(partition, None)

    def _report_lag(self) -> None:
        messages: dict[int, int] = {}
        seconds: dict[int, float] = {}
        now = time.time()
        for partition in sorted(self._assigned):
            try:
                _low, high = self._consumer.get_watermark_offsets(
                    TopicPartition(self.topic, partition), cached=True
                )
            except KafkaException:
                continue
            if high < 0 or partition not in self._committed:
                continue
            behind = max(high - self._committed[partition], 0)
            messages[partition] = behind
            # Upper bound: the oldest unread message is newer than the last one read.
            last = self._last_published.get(partition)
            seconds[partition] = max(now - last, 0.0) if behind and last else 0.0
        self._metrics.lag(self.topic, messages, seconds)

    def _close(self) -> None:
        try:
            self._consumer.close()  # leaves the group: its partitions move at once
        except (KafkaException, RuntimeError) as exc:
            log.warning("%s: closing the consumer: %s", self.group, exc)
        self._dead_letters.close()
        log.info("%s: left the group", self.group)
