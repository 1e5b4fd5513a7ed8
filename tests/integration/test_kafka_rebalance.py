"""The store group on Apache Kafka: members join, leave and die under a steady load.

This is the assignment production uses (cooperative-sticky with the classic
protocol, and KIP-848's ``consumer`` protocol), which the embedded broker
cannot finish (docs/decisions.md): three ``sshtrail store`` processes join one
by one while sessions keep arriving, one leaves with SIGTERM, one is killed
with ``kill -9`` and is dropped after the session timeout; the partitions end
with the survivor, and every chunk on the topic is stored exactly once.
"""

from __future__ import annotations

import signal
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient
from sqlalchemy import Engine

from sshtrail import migrate
from sshtrail.db import make_engine
from tests.support.cli import Running
from tests.support.consumers import (
    assert_store_equals_topic,
    create_topics,
    group_lag,
    start_member,
    wait_for,
    write_config,
)
from tests.support.kafka import KafkaCluster
from tests.support.rebalance import SteadyLoad

pytestmark = [pytest.mark.integration, pytest.mark.slow]

PARTITIONS = 6


def assignment(servers: str, group: str) -> dict[str, set[int]]:
    """Member id -> the partitions the broker says it holds."""
    admin = AdminClient({"bootstrap.servers": servers, "log_level": 2})
    described = admin.describe_consumer_groups([group])[group].result(10)
    return {
        member.member_id: {tp.partition for tp in member.assignment.topic_partitions}
        for member in described.members
    }


def split_among(servers: str, group: str, members: int) -> bool:
    """``members`` members hold every partition, none twice, each at least one."""
    try:
        held = list(assignment(servers, group).values())
    except KafkaException:  # the coordinator still loading the group, or moving
        return False
    every = [p for partitions in held for p in partitions]
    return len(held) == members and all(held) and sorted(every) == list(range(PARTITIONS))


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[tuple[str, Engine]]:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    migrate.upgrade(url)
    made = make_engine(url)
    yield url, made
    made.dispose()


@pytest.mark.parametrize("protocol", ["classic", "consumer"])
def test_members_join_leave_and_die_under_load_and_nothing_is_lost_or_doubled(
    broker: KafkaCluster, engine: tuple[str, Engine], tmp_path: Path, protocol: str
) -> None:
    """classic: cooperative-sticky (``assignment_strategy = auto`` on Kafka);
    consumer: the broker assigns (its session timeout is the harness's 10 s)."""
    url, store = engine
    servers = broker.bootstrap_servers
    topic = f"rebalance.{uuid.uuid4().hex[:10]}"
    create_topics(servers, topic, topic + ".dlq", partitions=PARTITIONS)
    config = write_config(tmp_path / "sshtrail.toml", servers, topic, url, group_protocol=protocol)
    group = f"{topic}-store"
    load = SteadyLoad(servers, topic, rate=100).start()
    members: list[Running] = []
    try:
        for count in (1, 2, 3):
            members.append(start_member(config, "store"))
            wait_for(
                lambda n=count: split_among(servers, group, n),  # type: ignore[misc]
                timeout=60,
                what=f"the partitions split among {count} members",
            )
        leaving = members.pop(1)
        leaving.stop(signal.SIGTERM)  # leaves the group cleanly
        wait_for(lambda: split_among(servers, group, 2), timeout=60, what="a clean leave")
        dying = members.pop(1)
        dying.process.kill()  # kill -9: dropped only when its session times out
        dying.process.wait(10)
        wait_for(
            lambda: split_among(servers, group, 1),
            timeout=60,
            what="the killed member dropped and its partitions taken over",
        )
        produced = load.stop()
        assert produced > 0
        wait_for(
            lambda: sum(group_lag(servers, group, topic).values()) == 0,
            timeout=90,
            what="the survivor to catch up",
        )
        assert_store_equals_topic(store, servers, topic, sessions=load.sessions)
    finally:
        load.stop()
        for member in members:
            if member.process.poll() is None:
                member.stop(signal.SIGTERM)
