"""One face for the in-memory broker and a real one, so the same tests run on both.

A test asks the bus for group members and producers (the ports the code
under test uses), puts messages on topics, and reads back what is there and
what a group committed. :class:`LocalBus` is instant and deterministic;
:class:`KafkaBus` goes through the real adapters to Apache Kafka.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Protocol

import msgspec
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from consumer.service import group_consumer
from sshtrail.kafka.adapters import KafkaProducer
from sshtrail.kafka.ports import (
    BrokerEvent,
    GroupConsumer,
    Message,
    MessageProducer,
    RebalanceListener,
)
from sshtrail.settings import load_settings
from tests.support.localbroker import LocalBroker


class Bus(Protocol):
    #: How long a test should wait for the group to settle (rebalances take time on Kafka).
    patience: float

    def create_topic(self, name: str, partitions: int) -> None: ...
    def append(self, topic: str, key: bytes | None, value: bytes) -> None: ...
    def ends(self, topic: str) -> dict[int, int]: ...
    def messages(self, topic: str) -> list[Message]: ...
    def delete_records(self, topic: str, partition: int, before: int) -> None: ...
    def committed(self, group: str, topic: str) -> dict[int, int]: ...
    def member(self, group: str, topic: str) -> GroupConsumer: ...
    def producer(
        self, on_event: Callable[[BrokerEvent], None] | None = None
    ) -> MessageProducer: ...
    def close(self) -> None: ...


class LocalBus:
    patience = 10.0

    def __init__(self) -> None:
        self.broker = LocalBroker()

    def create_topic(self, name: str, partitions: int) -> None:
        self.broker.create_topic(name, partitions)

    def append(self, topic: str, key: bytes | None, value: bytes) -> None:
        self.broker.append(topic, key, value)

    def ends(self, topic: str) -> dict[int, int]:
        return {p: len(log) for p, log in enumerate(self.broker.topics[topic])}

    def messages(self, topic: str) -> list[Message]:
        return list(self.broker.messages(topic))

    def delete_records(self, topic: str, partition: int, before: int) -> None:
        self.broker.delete_records(topic, partition, before)

    def committed(self, group: str, topic: str) -> dict[int, int]:
        return self.broker.committed(group, topic)

    def member(self, group: str, topic: str) -> GroupConsumer:
        return self.broker.member(group, topic)

    def producer(self, on_event: Callable[[BrokerEvent], None] | None = None) -> MessageProducer:
        return self.broker.producer(on_event)

    def close(self) -> None:
        pass


class KafkaBus:
    patience = 90.0

    def __init__(self, servers: str) -> None:
        self.servers = servers
        self._admin = AdminClient({"bootstrap.servers": servers})
        self._producer = Producer({"bootstrap.servers": servers, "linger.ms": 1})
        self.settings = load_settings(
            environ={
                "SSHTRAIL_KAFKA__BOOTSTRAP_SERVERS": servers,
                "SSHTRAIL_CONSUMER__SESSION_TIMEOUT_MS": "6000",
                "SSHTRAIL_CONSUMER__MAX_POLL_INTERVAL_MS": "15000",
                "SSHTRAIL_INSTANCE": f"bus-{uuid.uuid4().hex[:6]}",
            }
        )

    def create_topic(self, name: str, partitions: int) -> None:
        for future in self._admin.create_topics([NewTopic(name, partitions, 1)]).values():
            future.result(15)

    def append(self, topic: str, key: bytes | None, value: bytes) -> None:
        self._producer.produce(topic, value, key)
        self._producer.poll(0)

    def ends(self, topic: str) -> dict[int, int]:
        self._producer.flush(30)
        reader = self._reader()
        try:
            partitions = self._admin.list_topics(topic, timeout=10).topics[topic].partitions
            return {
                p: reader.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
                for p in partitions
            }
        finally:
            reader.close()

    def messages(self, topic: str) -> list[Message]:
        ends = self.ends(topic)
        reader = self._reader()
        try:
            lows = {
                p: reader.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[0]
                for p in ends
            }
            reader.assign([TopicPartition(topic, p, lows[p]) for p in ends])
            found: list[Message] = []
            while len(found) < sum(ends.values()) - sum(lows.values()):
                found.extend(m for m in reader.consume(1000, 1.0) if m.error() is None)
            return found
        finally:
            reader.close()

    def delete_records(self, topic: str, partition: int, before: int) -> None:
        for future in self._admin.delete_records(
            [TopicPartition(topic, partition, before)]
        ).values():
            future.result(15)

    def committed(self, group: str, topic: str) -> dict[int, int]:
        partitions = self._admin.list_topics(topic, timeout=10).topics[topic].partitions
        probe = Consumer({"bootstrap.servers": self.servers, "group.id": group})
        try:
            found = probe.committed([TopicPartition(topic, p) for p in partitions], timeout=10)
            return {tp.partition: tp.offset for tp in found if tp.offset >= 0}
        finally:
            probe.close()

    def member(self, group: str, topic: str) -> GroupConsumer:
        kafka = msgspec.structs.replace(self.settings.kafka, topic=topic)
        return group_consumer(msgspec.structs.replace(self.settings, kafka=kafka), group)

    def producer(self, on_event: Callable[[BrokerEvent], None] | None = None) -> MessageProducer:
        return KafkaProducer(
            {"bootstrap.servers": self.servers, "enable.idempotence": True, "acks": "all"},
            on_event,
        )

    def close(self) -> None:
        self._producer.flush(10)

    def _reader(self) -> Consumer:
        return Consumer(
            {
                "bootstrap.servers": self.servers,
                "group.id": f"r-{uuid.uuid4()}",
                "enable.auto.commit": False,
                "receive.message.max.bytes": 1 << 30,
            }
        )


class CheckedConsumer:
    """A group member whose every commit is first shown to ``check`` (and, once the
    broker took it, to ``accepted``), and whose pauses are noted: what a test asserts
    about the runner, on any broker."""

    def __init__(
        self,
        inner: GroupConsumer,
        check: Callable[[Mapping[int, int]], None],
        accepted: Callable[[Mapping[int, int]], None],
    ) -> None:
        self._inner = inner
        self._check = check
        self._accepted = accepted
        self.topic = inner.topic
        self.calls: list[tuple[str, tuple[int, ...]]] = []
        self.closed = False

    def subscribe(self, listener: RebalanceListener) -> None:
        self._inner.subscribe(listener)

    def consume(self, count: int, timeout: float) -> Sequence[Message]:
        return self._inner.consume(count, timeout)

    def commit(self, offsets: Mapping[int, int]) -> None:
        self._check(offsets)
        self._inner.commit(offsets)
        self._accepted(offsets)

    def pause(self, partitions: Collection[int]) -> None:
        self.calls.append(("pause", tuple(sorted(partitions))))
        self._inner.pause(partitions)

    def resume(self, partitions: Collection[int]) -> None:
        self.calls.append(("resume", tuple(sorted(partitions))))
        self._inner.resume(partitions)

    def seek(self, partition: int, offset: int) -> None:
        self._inner.seek(partition, offset)

    def assignment(self) -> set[int]:
        return self._inner.assignment()

    def committed(self, partitions: Collection[int], timeout: float) -> dict[int, int | None]:
        return self._inner.committed(partitions, timeout)

    def watermarks(self, partition: int, fresh: bool = False) -> tuple[int, int] | None:
        return self._inner.watermarks(partition, fresh)

    def close(self) -> None:
        self.closed = True
        self._inner.close()
