"""The bounded read-back the control boards and the alert outbox share, on real Kafka:
from a moment on, to the ends the topic had when the read began, within a message bound,
carrying on where it stopped."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import pytest
from confluent_kafka import Producer

from sshtrail.errors import TopicMissing
from sshtrail.kafka.adapters import KafkaTopicReader
from sshtrail.kafka.ports import Message
from sshtrail.kafka.readback import Stop, assign_since, read_to_ends
from tests.support.consumers import create_topics
from tests.support.kafka import Broker

pytestmark = pytest.mark.integration

#: When the messages before the moment read from were written, and after it, in ms ago.
BEFORE_MS, AFTER_MS, SINCE_MS = 60_000, 20_000, 40_000


def publish(servers: str, topic: str, values: list[bytes], ms_ago: int) -> None:
    """``values`` on ``topic``, keyed so they spread over its partitions, stamped
    ``ms_ago`` before now (the broker keeps the producer's time)."""
    producer = Producer({"bootstrap.servers": servers})
    stamp = int(time.time() * 1000) - ms_ago
    for value in values:
        producer.produce(topic, value, key=value, timestamp=stamp)
    assert producer.flush(30) == 0


@pytest.fixture
def reader(broker: Broker) -> Iterator[KafkaTopicReader]:
    made = KafkaTopicReader(
        {
            "bootstrap.servers": broker.bootstrap_servers,
            "group.id": f"readback-{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False,
        }
    )
    yield made
    made.close()


def test_a_read_starts_at_the_moment_stops_at_its_bound_and_carries_on_to_the_ends(
    broker: Broker, reader: KafkaTopicReader
) -> None:
    topic = f"readback.{uuid.uuid4().hex[:10]}"
    create_topics(broker.bootstrap_servers, topic, partitions=3)
    old = [f"old-{n}".encode() for n in range(20)]
    new = [f"new-{n}".encode() for n in range(30)]
    publish(broker.bootstrap_servers, topic, old, BEFORE_MS)
    publish(broker.bootstrap_servers, topic, new, AFTER_MS)
    read: list[bytes] = []

    def take(message: Message) -> None:
        read.append(message.value() or b"")

    since = int(time.time() * 1000) - SINCE_MS
    positions = assign_since(reader, topic, since)
    first = read_to_ends(reader, topic, positions, take, within_s=60, max_messages=10)
    assert first.stop is Stop.COUNT
    assert first.read == len(read) == 10
    # Written after the read began: past the ends it reads to.
    publish(broker.bootstrap_servers, topic, [b"later"], 0)
    rest = read_to_ends(reader, topic, positions, take, within_s=60, max_messages=1000)
    assert rest.stop is Stop.END
    assert sorted(read) == sorted([*new, b"later"])  # nothing from before the moment
    again = read_to_ends(reader, topic, positions, take, within_s=60, max_messages=1000)
    assert (again.stop, again.read) == (Stop.END, 0)


def test_a_reader_replacing_a_dropped_one_carries_on_from_the_known_positions(
    broker: Broker, reader: KafkaTopicReader
) -> None:
    topic = f"readback.{uuid.uuid4().hex[:10]}"
    create_topics(broker.bootstrap_servers, topic, partitions=2)
    publish(broker.bootstrap_servers, topic, [b"a", b"b", b"c", b"d"], AFTER_MS)
    read: list[bytes] = []

    def take(message: Message) -> None:
        read.append(message.value() or b"")

    since = int(time.time() * 1000) - SINCE_MS
    known = assign_since(reader, topic, since)
    read_to_ends(reader, topic, known, take, within_s=60, max_messages=100)
    publish(broker.bootstrap_servers, topic, [b"e", b"f"], 0)
    other = KafkaTopicReader(
        {"bootstrap.servers": broker.bootstrap_servers, "group.id": "readback-other"}
    )
    try:
        positions = assign_since(other, topic, since, known)
        more = read_to_ends(other, topic, positions, take, within_s=60, max_messages=100)
    finally:
        other.close()
    assert more.stop is Stop.END
    assert sorted(read) == [b"a", b"b", b"c", b"d", b"e", b"f"]  # each once


def test_a_topic_never_created_is_said_so(reader: KafkaTopicReader) -> None:
    with pytest.raises(TopicMissing):
        assign_since(reader, f"readback.missing.{uuid.uuid4().hex[:10]}", 0)
