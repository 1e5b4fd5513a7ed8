"""The ports of :mod:`sshtrail.kafka.ports` on confluent-kafka (librdkafka).

This module and :mod:`sshtrail.kafka.admin` are the only places that catch
``KafkaException`` or look at a ``KafkaError``: everything else sees
:class:`~sshtrail.errors.BrokerError` and its kin, or a
:class:`~sshtrail.kafka.ports.DeliveryError`.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition

from sshtrail.errors import BrokerError, CommitFailed, MessageTooLarge, QueueFull, TopicMissing
from sshtrail.kafka.config import LARGE_FETCH, QUIET, client_config
from sshtrail.kafka.ports import (
    BrokerEvent,
    Delivered,
    DeliveryError,
    ErrorSink,
    Headers,
    Message,
    RebalanceListener,
)
from sshtrail.settings import Settings

log = logging.getLogger(__name__)


def reason(exc: KafkaException) -> str:
    """The human part of a librdkafka error ("Failed to get metadata: ...")."""
    error = exc.args[0] if exc.args else None
    return error.str() if isinstance(error, KafkaError) else str(exc)


def _fatal(exc: KafkaException) -> bool:
    error = exc.args[0] if exc.args else None
    return isinstance(error, KafkaError) and _is_fatal(error)


def _is_fatal(error: KafkaError) -> bool:
    """Whether the client that reported ``error`` can never be used again.

    librdkafka says so in two ways: ``error.fatal()`` (an error from
    ``error_cb``, a producer's) and the code ``_FATAL``, which a consumer's
    ``consume()`` returns as a message error -- with ``fatal()`` false -- and
    its later commits fail with (librdkafka's INTRODUCTION.md, "Fatal consumer
    errors": a static member fenced by another with its ``group.instance.id``).
    """
    return bool(error.fatal()) or error.code() == KafkaError._FATAL


def _fatal_cause(error: KafkaError) -> str:
    """The cause of a fatal consumer error in one line: librdkafka words it
    "Fatal error: CAUSE: Fatal consumer error: CAUSE"."""
    text = error.str().removeprefix("Fatal error: ")
    cause, said, again = text.partition(": Fatal consumer error: ")
    return cause if said and again == cause else text


@contextmanager
def translated(what: str) -> Iterator[None]:
    """Run a client call; a ``KafkaException`` becomes a :class:`BrokerError` saying ``what``."""
    try:
        yield
    except KafkaException as exc:
        cause = reason(exc)
        raise BrokerError(f"{what}: {cause}", fatal=_fatal(exc), reason=cause) from None


def _without_errors(messages: list[Any], on_error: ErrorSink) -> list[Message]:
    """The messages of a ``consume()`` that are messages; errors reported or raised."""
    good: list[Message] = []
    for message in messages:
        error = message.error()
        if error is None:
            good.append(message)
        elif _is_fatal(error):
            # Retrying is no use: the client will never fetch again. The process
            # ends, and its replacement resumes from the committed offsets.
            cause = _fatal_cause(error)
            raise BrokerError(
                f"fatal Kafka error, this consumer cannot go on: {cause}", fatal=True, reason=cause
            )
        elif error.code() != KafkaError._PARTITION_EOF:
            on_error(error.str())
    return good


def _log_errors(message: str) -> None:
    log.warning("Kafka (the client retries): %s", message)


class KafkaGroupConsumer:
    """:class:`~sshtrail.kafka.ports.GroupConsumer` on ``confluent_kafka.Consumer``."""

    def __init__(
        self, config: dict[str, Any], topic: str, on_error: ErrorSink = _log_errors
    ) -> None:
        self.topic = topic
        self._on_error = on_error
        with translated("cannot create the consumer"):
            self._consumer = Consumer(config)

    def subscribe(self, listener: RebalanceListener) -> None:
        def assigned(_consumer: Consumer, partitions: list[TopicPartition]) -> None:
            listener.assigned([tp.partition for tp in partitions])

        def revoked(_consumer: Consumer, partitions: list[TopicPartition]) -> None:
            listener.revoked([tp.partition for tp in partitions])

        with translated(f"cannot subscribe to {self.topic}"):
            self._consumer.subscribe(
                [self.topic], on_assign=assigned, on_revoke=revoked, on_lost=revoked
            )

    def consume(self, count: int, timeout: float) -> Sequence[Message]:
        with translated("consume failed"):
            messages = self._consumer.consume(count, timeout)
        return _without_errors(messages, self._on_error)

    def commit(self, offsets: Mapping[int, int]) -> None:
        partitions = [TopicPartition(self.topic, p, o) for p, o in offsets.items()]
        try:
            answered = self._consumer.commit(offsets=partitions, asynchronous=False)
        except KafkaException as exc:
            raise CommitFailed(f"commit refused: {reason(exc)}", fatal=_fatal(exc)) from None
        failed = [tp for tp in answered or [] if tp.error is not None]
        if failed:
            raise CommitFailed(
                "commit refused for partitions "
                + ", ".join(f"{tp.partition} ({tp.error})" for tp in failed)
            )

    def pause(self, partitions: Collection[int]) -> None:
        if partitions:
            with translated("pause failed"):
                self._consumer.pause(self._tps(partitions))

    def resume(self, partitions: Collection[int]) -> None:
        if partitions:
            with translated("resume failed"):
                self._consumer.resume(self._tps(partitions))

    def seek(self, partition: int, offset: int) -> None:
        with translated(f"cannot seek partition {partition} to {offset}"):
            self._consumer.seek(TopicPartition(self.topic, partition, offset))

    def assignment(self) -> set[int]:
        with translated("cannot read the assignment"):
            return {tp.partition for tp in self._consumer.assignment() if tp.topic == self.topic}

    def committed(self, partitions: Collection[int], timeout: float) -> dict[int, int | None]:
        with translated("cannot read committed offsets"):
            found = self._consumer.committed(self._tps(partitions), timeout=timeout)
        return {tp.partition: tp.offset if tp.offset >= 0 else None for tp in found}

    def watermarks(self, partition: int, fresh: bool = False) -> tuple[int, int] | None:
        where = TopicPartition(self.topic, partition)
        try:
            if fresh:
                marks = self._consumer.get_watermark_offsets(where, timeout=1.0)
            else:
                marks = self._consumer.get_watermark_offsets(where, cached=True)
        except KafkaException:
            return None
        if marks is None or marks[1] < 0:
            return None
        return int(marks[0]), int(marks[1])

    def close(self) -> None:
        try:
            self._consumer.close()
        except (KafkaException, RuntimeError) as exc:
            log.warning("closing the consumer: %s", exc)

    def _tps(self, partitions: Collection[int]) -> list[TopicPartition]:
        return [TopicPartition(self.topic, p) for p in sorted(partitions)]


class KafkaProducer:
    """:class:`~sshtrail.kafka.ports.MessageProducer` on ``confluent_kafka.Producer``.

    librdkafka reports a fatal error (an idempotent producer that lost its
    sequence state) through ``error_cb`` only -- a later ``produce`` may or may
    not raise it (confluent-kafka-python #655) -- so the callback sets
    :attr:`fatal`, and the owner replaces the producer when it is set.
    """

    def __init__(
        self, config: dict[str, Any], on_event: Callable[[BrokerEvent], None] | None = None
    ) -> None:
        self._on_event = on_event or _log_event
        self._fatal: str | None = None
        with translated("cannot create the producer"):
            self._producer = Producer({**config, "error_cb": self._error})

    @property
    def fatal(self) -> str | None:
        return self._fatal

    def produce(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        on_delivery: Delivered,
        headers: Headers = (),
    ) -> None:
        def delivered(error: KafkaError | None, _message: Any) -> None:
            on_delivery(None if error is None else _delivery_error(error))

        try:
            self._producer.produce(
                topic, value, key, headers=list(headers) or None, on_delivery=delivered
            )
        except BufferError as exc:
            raise QueueFull(f"the producer's queue is full: {exc}") from None
        except KafkaException as exc:
            error = exc.args[0] if exc.args else None
            if isinstance(error, KafkaError) and error.code() == KafkaError.MSG_SIZE_TOO_LARGE:
                raise MessageTooLarge(f"message refused: {reason(exc)}") from None
            if _fatal(exc):
                self._fatal = self._fatal or reason(exc)
            raise BrokerError(f"cannot produce: {reason(exc)}", fatal=_fatal(exc)) from None

    def poll(self, timeout: float) -> None:
        self._producer.poll(timeout)

    def flush(self, timeout: float) -> int:
        return int(self._producer.flush(timeout))

    def _error(self, error: KafkaError) -> None:
        if _is_fatal(error):
            self._fatal = self._fatal or error.str()
            self._on_event(BrokerEvent("fatal", error.str()))
        elif error.code() in (KafkaError._ALL_BROKERS_DOWN, KafkaError._TRANSPORT):
            self._on_event(BrokerEvent("unreachable", error.str()))
        else:
            self._on_event(BrokerEvent("warning", error.str()))


def _delivery_error(error: KafkaError) -> DeliveryError:
    if error.code() in (KafkaError.MSG_SIZE_TOO_LARGE, KafkaError.INVALID_MSG_SIZE):
        return DeliveryError("too-large", error.str())
    if _is_fatal(error):
        return DeliveryError("fatal", error.str())
    return DeliveryError("failed", error.str())


def _log_event(event: BrokerEvent) -> None:
    level = logging.ERROR if event.kind == "fatal" else logging.WARNING
    log.log(level, "Kafka: %s", event.detail)


class KafkaTopicReader:
    """:class:`~sshtrail.kafka.ports.TopicReader` on a consumer that joins no group."""

    def __init__(
        self, config: dict[str, Any], timeout: float = 10.0, on_error: ErrorSink = _log_errors
    ) -> None:
        self._timeout = timeout
        self._on_error = on_error
        with translated("cannot create the consumer"):
            self._consumer = Consumer(config)

    def partitions(self, topic: str) -> list[int]:
        with translated(f"cannot read the partitions of {topic}"):
            found = self._consumer.list_topics(topic, timeout=self._timeout).topics.get(topic)
        if found is None or found.error is not None:
            raise TopicMissing(f"topic {topic} does not exist")
        if not found.partitions:  # just created: its partitions are not known yet
            raise TopicMissing(f"topic {topic} has no partitions yet")
        return sorted(found.partitions)

    def watermarks(self, topic: str, partition: int) -> tuple[int, int]:
        with translated(f"cannot read the offsets of {topic} partition {partition}"):
            low, high = self._consumer.get_watermark_offsets(
                TopicPartition(topic, partition), timeout=self._timeout
            )
        return int(low), int(high)

    def offset_at(self, topic: str, partition: int, millis: int) -> int | None:
        with translated(f"cannot look up a time in {topic} partition {partition}"):
            [found] = self._consumer.offsets_for_times(
                [TopicPartition(topic, partition, millis)], self._timeout
            )
        return int(found.offset) if found.offset >= 0 else None

    def assign(self, topic: str, positions: Mapping[int, int]) -> None:
        with translated(f"cannot read {topic}"):
            self._consumer.assign([TopicPartition(topic, p, o) for p, o in positions.items()])

    def consume(self, count: int, timeout: float) -> Sequence[Message]:
        with translated("consume failed"):
            messages = self._consumer.consume(count, timeout)
        return _without_errors(messages, self._on_error)

    def close(self) -> None:
        try:
            self._consumer.close()
        except (KafkaException, RuntimeError) as exc:
            log.debug("closing a reader: %s", exc)


def topic_reader(
    settings: Settings, purpose: str, timeout: float = 10.0, on_error: ErrorSink = _log_errors
) -> KafkaTopicReader:
    """A reader for a command (lag, reprocess, watch): its own throw-away group id,
    nothing committed, quiet; consume errors the client retries go to ``on_error``
    (logged by default)."""
    config = client_config(
        settings,
        **{
            "group.id": f"sshtrail-{purpose}-{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            **LARGE_FETCH,
            **QUIET,
        },
    )
    return KafkaTopicReader(config, timeout, on_error)
