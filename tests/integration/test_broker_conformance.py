"""What the pipeline needs from a Kafka-protocol broker, checked on both brokers.

Every case runs on Apache Kafka (production) and on the embedded broker of
``up --demo``; the one the embedded broker fails (a cooperative rebalance's
second round) is marked for it alone, so this module says which gaps are the
embedded broker's. If the embedded broker is ever replaced, these tests say
whether the new one keeps keyed ordering, watermarks, consumer groups and
offset bookkeeping right; lag and re-consumption are computed from exactly
these numbers.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import (
    Consumer,
    ConsumerGroupTopicPartitions,
    Message,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient, NewTopic, OffsetSpec

from sshtrail.broker import EmbeddedBroker, free_port
from sshtrail.kafka import partition_for
from tests.support.kafka import Broker, KafkaCluster

pytestmark = pytest.mark.integration

PARTITIONS = 4


def create_topic(servers: str, name: str, partitions: int = PARTITIONS) -> None:
    admin = AdminClient({"bootstrap.servers": servers})
    admin.create_topics([NewTopic(name, partitions, 1)])[name].result(10)


def producer(servers: str) -> Producer:
    return Producer(
        {
            "bootstrap.servers": servers,
            "enable.idempotence": True,
            "acks": "all",
            "partitioner": "murmur2_random",
            "compression.type": "zstd",
            "linger.ms": 20,  # force multi-record batches
        }
    )


def consumer(servers: str, group: str, **extra: Any) -> Consumer:
    return Consumer(
        {
            "bootstrap.servers": servers,
            "group.id": group,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "client.id": f"conformance-{group}",
            **extra,
        }
    )


def position(message: Message) -> tuple[int, int]:
    partition, offset = message.partition(), message.offset()
    assert partition is not None
    assert offset is not None
    return partition, offset


def produce_keyed(servers: str, topic: str, count: int, keys: int) -> list[tuple[int, int]]:
    """Produce ``count`` messages over ``keys`` keys; returns (partition, offset) per message."""
    delivered: list[tuple[int, int]] = []
    errors: list[object] = []

    def report(error: object, message: Message) -> None:
        if error is not None:
            errors.append(error)
        else:
            delivered.append(position(message))

    p = producer(servers)
    for i in range(count):
        p.produce(
            topic, key=f"session-{i % keys}", value=f"{i % keys}:{i}".encode(), on_delivery=report
        )
        if i % 200 == 0:
            p.poll(0)
    assert p.flush(30) == 0
    assert errors == []
    return delivered


def drain(c: Consumer, expected: int, timeout: float = 30.0) -> list[Message]:
    messages: list[Message] = []
    deadline = time.monotonic() + timeout
    while len(messages) < expected and time.monotonic() < deadline:
        for message in c.consume(500, 0.5):
            assert message.error() is None, message.error()
            messages.append(message)
    return messages


@pytest.fixture(params=["kafka", "embedded"])
def broker(request: pytest.FixtureRequest) -> Broker:
    """Apache Kafka (the run's broker), then the embedded one; taken by name, so the
    run's Kafka is not stopped at each switch (tests/conftest.py, ``broker``)."""
    found: Broker = request.getfixturevalue(
        "kafka_broker" if request.param == "kafka" else "embedded_broker"
    )
    return found


@pytest.fixture
def topic(broker: Broker, topic_name: str) -> str:
    create_topic(broker.bootstrap_servers, topic_name)
    return topic_name


def test_keyed_idempotent_produce_keeps_each_key_on_its_java_partition_in_order(
    broker: Broker, topic: str
) -> None:
    produce_keyed(broker.bootstrap_servers, topic, 3000, keys=25)
    c = consumer(broker.bootstrap_servers, f"g-{topic}")
    c.subscribe([topic])
    messages = drain(c, 3000)
    c.close()
    assert len(messages) == 3000
    seen: dict[str, list[int]] = defaultdict(list)
    for message in messages:
        key, value = message.key(), message.value()
        assert isinstance(key, bytes)
        assert isinstance(value, bytes)
        assert message.partition() == partition_for(key, PARTITIONS)
        seen[key.decode()].append(int(value.split(b":")[1]))
    assert len(seen) == 25
    for counters in seen.values():
        assert counters == sorted(counters)
        assert len(counters) == 120


def test_high_watermarks_count_every_record_of_multi_record_batches(
    broker: Broker, topic: str
) -> None:
    delivered = produce_keyed(broker.bootstrap_servers, topic, 3000, keys=7)
    per_partition: dict[int, int] = defaultdict(int)
    for partition, offset in delivered:
        per_partition[partition] = max(per_partition[partition], offset + 1)
    c = consumer(broker.bootstrap_servers, f"w-{topic}")
    total = 0
    for partition in range(PARTITIONS):
        low, high = c.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)
        assert low == 0
        assert high == per_partition.get(partition, 0)
        total += high
    c.close()
    assert total == 3000
    assert sorted(offset for p, offset in delivered if p == delivered[0][0]) == list(
        range(per_partition[delivered[0][0]])
    )


def test_list_offsets_earliest_latest_and_by_time(broker: Broker, topic: str) -> None:
    servers = broker.bootstrap_servers
    produce_keyed(servers, topic, 10, keys=1)
    between = int(time.time() * 1000)
    time.sleep(0.05)
    produce_keyed(servers, topic, 5, keys=1)
    partition = partition_for(b"session-0", PARTITIONS)
    tp = TopicPartition(topic, partition)
    admin = AdminClient({"bootstrap.servers": servers})
    for spec, expected in ((OffsetSpec.earliest(), 0), (OffsetSpec.latest(), 15)):
        result = admin.list_offsets({tp: spec})[tp].result()
        assert result.offset == expected
    by_time = admin.list_offsets({tp: OffsetSpec.for_timestamp(between)})[tp].result()
    assert by_time.offset == 10
    c = consumer(servers, f"t-{topic}")
    [found] = c.offsets_for_times([TopicPartition(topic, partition, between)], timeout=10)
    c.close()
    assert found.offset == 10


def test_commit_and_committed_agree_with_the_admin_view(broker: Broker, topic: str) -> None:
    servers = broker.bootstrap_servers
    produce_keyed(servers, topic, 40, keys=4)
    group = f"c-{topic}"
    c = consumer(servers, group)
    c.subscribe([topic])
    messages = drain(c, 40)
    last: dict[int, int] = {}
    for message in messages:
        partition, offset = position(message)
        last[partition] = offset
    c.commit(offsets=[TopicPartition(topic, p, o + 1) for p, o in last.items()], asynchronous=False)
    committed = c.committed([TopicPartition(topic, p) for p in range(PARTITIONS)], timeout=10)
    c.close()
    assert {tp.partition: tp.offset for tp in committed if tp.offset >= 0} == {
        p: o + 1 for p, o in last.items()
    }
    admin = AdminClient({"bootstrap.servers": servers})
    listed = admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group)])[group]
    offsets = {tp.partition: tp.offset for tp in listed.result().topic_partitions if tp.offset >= 0}
    assert offsets == {p: o + 1 for p, o in last.items()}
    # A new member of the group resumes after the committed offsets: nothing again.
    again = consumer(servers, group)
    again.subscribe([topic])
    assert drain(again, 1, timeout=3) == []
    again.close()


def test_two_groups_read_independently(broker: Broker, topic: str) -> None:
    produce_keyed(broker.bootstrap_servers, topic, 100, keys=10)
    for group in ("store", "index"):
        c = consumer(broker.bootstrap_servers, f"{group}-{topic}")
        c.subscribe([topic])
        assert len(drain(c, 100)) == 100
        c.close()


@pytest.fixture
def members(broker: Broker, topic: str) -> Iterator[list[Consumer]]:
    made: list[Consumer] = []
    yield made
    for member in made:
        member.close()


def _assignment(c: Consumer) -> set[int]:
    return {tp.partition for tp in c.assignment()}


def _settle(group: list[Consumer], wanted: list[int], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while [len(_assignment(c)) for c in group] != wanted:
        assert time.monotonic() < deadline, [sorted(_assignment(c)) for c in group]
        for c in group:
            c.poll(0.2)


@pytest.mark.parametrize("strategy", ["range", "cooperative-sticky", "consumer"])
def test_group_rebalance_splits_and_hands_over_partitions(
    broker: Broker,
    topic: str,
    members: list[Consumer],
    strategy: str,
    request: pytest.FixtureRequest,
) -> None:
    """``consumer`` is KIP-848's protocol: the broker assigns (Kafka 4 only)."""
    embedded = isinstance(broker, EmbeddedBroker)
    if embedded and strategy == "consumer":
        pytest.skip("the embedded broker does not speak KIP-848's consumer group protocol")
    if embedded and strategy == "cooperative-sticky":
        request.applymarker(
            pytest.mark.xfail(
                strict=False,  # it sometimes completes: a gap that comes and goes
                reason="noida-db 0.2.3 often does not complete the second round of an "
                "incremental cooperative rebalance within 15 s (docs/decisions.md)",
            )
        )
    servers, group = broker.bootstrap_servers, f"r-{topic}"
    options: dict[str, Any] = (
        {"group.protocol": "consumer"}
        if strategy == "consumer"
        else {"session.timeout.ms": 6000, "partition.assignment.strategy": strategy}
    )
    first = consumer(servers, group, **options)
    second = consumer(servers, group, **options)
    members.extend([first, second])
    first.subscribe([topic])
    _settle([first], [PARTITIONS])
    second.subscribe([topic])
    _settle([first, second], [PARTITIONS // 2, PARTITIONS // 2], timeout=15)
    assert _assignment(first).isdisjoint(_assignment(second))

    admin = AdminClient({"bootstrap.servers": servers})
    described = admin.describe_consumer_groups([group])[group].result()
    assert len(described.members) == 2
    assigned: set[int] = set()
    for member in described.members:
        assert member.client_id == f"conformance-{group}"
        assert member.host
        assigned |= {tp.partition for tp in member.assignment.topic_partitions}
    assert assigned == set(range(PARTITIONS))

    members.remove(second)
    second.close()
    _settle([first], [PARTITIONS])


@pytest.mark.parametrize("kind", ["kafka", "embedded"])
def test_data_and_committed_offsets_survive_a_restart(
    tmp_path: Path, topic_name: str, kind: str
) -> None:
    with (tmp_path / "broker.log").open("ab") as log:
        own: KafkaCluster | EmbeddedBroker = (
            KafkaCluster(tmp_path / "kafka")
            if kind == "kafka"
            else EmbeddedBroker("127.0.0.1", free_port(), tmp_path / "data", log)
        )
        own.start()
        try:
            create_topic(own.bootstrap_servers, topic_name)
            produce_keyed(own.bootstrap_servers, topic_name, 50, keys=5)
            c = consumer(own.bootstrap_servers, "persist")
            c.subscribe([topic_name])
            drain(c, 50)
            c.commit(asynchronous=False)
            c.close()
        finally:
            assert own.stop() == 0
        own.start()
        try:
            c = consumer(own.bootstrap_servers, "persist")
            partitions = [TopicPartition(topic_name, p) for p in range(PARTITIONS)]
            highs = [c.get_watermark_offsets(tp, timeout=10)[1] for tp in partitions]
            committed = [tp.offset for tp in c.committed(partitions, timeout=10)]
            c.close()
        finally:
            own.stop()
    assert sum(highs) == 50
    assert [max(o, 0) for o in committed] == highs
