"""Acknowledged writes survive ``kill -9`` of the partition leader on a three-node Kafka.

The gap docs/decisions.md names for the embedded broker: a write it
acknowledged can be gone after a crash, so the gateway replays a window of
acknowledged chunks there. On Apache Kafka with replication factor 3,
``min.insync.replicas=2`` and an idempotent ``acks=all`` producer (the
gateway's settings), a write is acknowledged only once the in-sync replicas
have it, and only an in-sync replica can become leader (unclean election is
off). This module shows that is so for real: a producer writes steadily, the
leader of one partition is killed with SIGKILL mid-stream, and every message
the producer was told is written is read back exactly once, at the offset it
was acknowledged at and in the order it was produced -- from the new leader,
and again from the old one once it has rejoined and leads again. The
partition's longest pause in acknowledgements (the leader election as a
producer sees it) is printed and written to ``replication.json``.
"""

from __future__ import annotations

import itertools
import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import (
    Consumer,
    ElectionType,
    KafkaError,
    KafkaException,
    Message,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient, NewTopic

from sshtrail.kafka.config import partition_for
from tests.support.kafka import KafkaCluster, KafkaUnavailable
from tests.support.knobs import knob
from tests.support.services import unavailable
from tests.support.waiting import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]

PARTITIONS = 3
#: Messages written in all; the leader is killed once a third are acknowledged.
MESSAGES = int(knob("REPLICATION_MESSAGES", "30000"))
#: Messages handed to the producer per second, so writes are in flight at the kill.
RATE = 3000


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaCluster]:
    """Three combined broker+controller nodes: replication factor 3, min ISR 2."""
    cluster = KafkaCluster(tmp_path_factory.mktemp("replication") / "kafka", nodes=3)
    try:
        cluster.start()
    except KafkaUnavailable as exc:
        cluster.stop(timeout=5)
        unavailable(f"Apache Kafka cannot start: {exc}")
    yield cluster
    cluster.stop(timeout=10)


def partitions_of(servers: str, topic: str) -> dict[int, tuple[int, set[int]]]:
    """Each partition's leader and in-sync replicas, as the cluster reports them."""
    admin = AdminClient({"bootstrap.servers": servers, "log_level": 2})
    found = admin.list_topics(topic, timeout=10).topics[topic].partitions
    return {p: (meta.leader, set(meta.isrs)) for p, meta in found.items()}


def log_end(reader: Consumer, topic: str, partition: int) -> int:
    """The partition's log-end offset, asked again while leadership is still moving.

    Right after an election, a client whose metadata is a moment old asks the former
    leader, which answers "not leader for partition"; the client refreshes its
    metadata and the next ask reaches the new leader.
    """
    moving = {KafkaError.NOT_LEADER_FOR_PARTITION, KafkaError.LEADER_NOT_AVAILABLE}
    deadline = time.monotonic() + 30
    where = TopicPartition(topic, partition)
    while True:
        try:
            return int(reader.get_watermark_offsets(where, timeout=10)[1])
        except KafkaException as exc:
            error = exc.args[0]
            if error.code() not in moving or time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def read_back(servers: str, topic: str) -> dict[bytes, list[tuple[int, int]]]:
    """value -> every (partition, offset) holding it, read from the start to the log end."""
    reader = Consumer(
        {
            "bootstrap.servers": servers,
            "group.id": f"read-{uuid.uuid4()}",
            "enable.auto.commit": False,
            "log_level": 2,
        }
    )
    try:
        ends = {p: log_end(reader, topic, p) for p in range(PARTITIONS)}
        reader.assign([TopicPartition(topic, p, 0) for p in range(PARTITIONS)])
        found: dict[bytes, list[tuple[int, int]]] = {}
        position = dict.fromkeys(range(PARTITIONS), 0)
        deadline = time.monotonic() + 60
        while any(position[p] < ends[p] for p in ends):
            assert time.monotonic() < deadline, f"read {position} of {ends} within 60 s"
            for message in reader.consume(5000, 0.5):
                assert message.error() is None, message.error()
                partition, offset, value = message.partition(), message.offset(), message.value()
                assert partition is not None
                assert offset is not None
                assert value is not None
                found.setdefault(value, []).append((partition, offset))
                position[partition] = offset + 1
        return found
    finally:
        reader.close()


def assert_every_acknowledged_write_once(
    servers: str, topic: str, acknowledged: dict[bytes, tuple[int, int]]
) -> None:
    found = read_back(servers, topic)
    missing = [v for v in acknowledged if v not in found]
    twice = {v: where for v, where in found.items() if len(where) > 1}
    elsewhere = {v: (at, found[v]) for v, at in acknowledged.items() if found.get(v, [at]) != [at]}
    assert not missing, f"{len(missing)} acknowledged writes are gone: {missing[:5]}"
    assert not twice, f"{len(twice)} writes are there more than once: {list(twice.items())[:5]}"
    assert not elsewhere, f"not at the offset acknowledged: {list(elsewhere.items())[:5]}"
    assert len(found) == len(acknowledged)  # and nothing that was never written
    for partition in range(PARTITIONS):  # in the order they were produced
        values = [
            v for v, (p, _) in sorted(acknowledged.items(), key=lambda a: a[1]) if p == partition
        ]
        assert values == sorted(values), f"partition {partition} is out of order"


def test_acknowledged_writes_survive_kill_9_of_the_partition_leader(
    cluster: KafkaCluster, tmp_path: Path
) -> None:
    servers = cluster.bootstrap_servers
    topic = f"replicated.{uuid.uuid4().hex[:10]}"
    admin = AdminClient({"bootstrap.servers": servers, "log_level": 2})
    admin.create_topics([NewTopic(topic, PARTITIONS, 3)])[topic].result(15)
    wait_for(
        lambda: all(len(isr) == 3 for _, isr in partitions_of(servers, topic).values()),
        timeout=30,
        what="every replica in sync",
    )
    keys = [f"session-{i % 500}".encode() for i in range(MESSAGES)]
    watched = partition_for(keys[0], PARTITIONS)
    victim = cluster.leader_of(topic, watched)

    producer = Producer(
        {
            "bootstrap.servers": servers,
            "enable.idempotence": True,
            "acks": "all",
            "partitioner": "murmur2_random",
            "linger.ms": 5,
            "message.timeout.ms": 120_000,
            "log_level": 2,
        }
    )
    acknowledged: dict[bytes, tuple[int, int]] = {}
    acked_at: dict[bytes, float] = {}
    refused: list[str] = []

    def delivered(error: KafkaError | None, message: Message) -> None:
        value = message.value()
        assert value is not None
        if error is not None:
            refused.append(f"{value!r}: {error}")
            return
        partition, offset = message.partition(), message.offset()
        assert partition is not None
        assert offset is not None
        acknowledged[value] = (partition, offset)
        acked_at[value] = time.monotonic()

    killed_at: float | None = None
    started = time.monotonic()
    for i, key in enumerate(keys):
        if i % 30 == 0:  # paced, so writes are in flight when the leader dies
            time.sleep(max(0.0, started + i / RATE - time.monotonic()))
            producer.poll(0)
        producer.produce(topic, f"{i:06d}".encode(), key, on_delivery=delivered)
        if killed_at is None and len(acknowledged) >= MESSAGES // 3:
            cluster.kill_node(victim)  # SIGKILL, with writes in flight to it
            killed_at = time.monotonic()
    assert producer.flush(120) == 0, "the producer still holds messages after 120 s"
    assert killed_at is not None
    assert refused == [], refused[:5]
    assert len(acknowledged) == MESSAGES
    assert partitions_of(servers, topic)[watched][0] not in (victim, -1)

    # How long the partition took no writes: the leader election as a producer sees it.
    on_watched = sorted(t for v, t in acked_at.items() if acknowledged[v][0] == watched)
    figures = {
        "messages": MESSAGES,
        "killed_node": victim,
        "acknowledged_on_its_partition_before_the_kill": sum(t < killed_at for t in on_watched),
        "acknowledged_in_the_last_0_5_s_before_the_kill": sum(
            killed_at - 0.5 <= t < killed_at for t in acked_at.values()
        ),
        "longest_gap_between_acks_on_its_partition_s": round(
            max(b - a for a, b in itertools.pairwise(on_watched)), 2
        ),
    }
    print(f"\nacks=all through kill -9 of the leader: {json.dumps(figures)}")
    (tmp_path / "replication.json").write_text(json.dumps(figures, indent=2) + "\n")

    # Read from the new leader while the old one is down ...
    assert_every_acknowledged_write_once(servers, topic, acknowledged)

    # ... and from the old leader once it is back, caught up and leading again:
    # what it had beyond the new leader's log (never acknowledged) is cut, and
    # nothing acknowledged is missing on it.
    cluster.start_node(victim)
    wait_for(
        lambda: victim in partitions_of(servers, topic)[watched][1],
        timeout=60,
        what=f"node {victim} back in the in-sync replicas",
    )
    election = admin.elect_leaders(ElectionType.PREFERRED, [TopicPartition(topic, watched)])
    election.result(30)
    wait_for(
        lambda: cluster.leader_of(topic, watched) == victim,
        timeout=30,
        what=f"node {victim} leading partition {watched} again",
    )
    assert_every_acknowledged_write_once(servers, topic, acknowledged)
