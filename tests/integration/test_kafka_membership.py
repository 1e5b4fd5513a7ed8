"""Consumer-group membership on Apache Kafka, where the embedded broker falls short.

docs/decisions.md, "Consumer membership on the embedded broker": noida-db never
drops a member killed with ``kill -9``, so its group stalls. Apache Kafka drops
it after ``session.timeout.ms`` and gives its partitions to the members left;
what production relies on is proven here, on Kafka.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient
from sqlalchemy import Engine

from sshtrail import migrate
from sshtrail.db import make_engine
from tests.support.consumers import (
    SESSION_TIMEOUT_MS,
    assert_store_equals_topic,
    chunk_count,
    group_lag,
    start_member,
    wait_for,
    write_config,
)
from tests.support.kafka import KafkaCluster
from tests.support.recordings import keyed, produce, recording

pytestmark = pytest.mark.integration

SESSION_TIMEOUT_S = SESSION_TIMEOUT_MS / 1000
#: librdkafka's heartbeat.interval.ms (its default), in seconds: the broker's session
#: timer runs from the last heartbeat it had, up to this long before the kill.
HEARTBEAT_S = 3.0


def members(servers: str, group: str) -> list[set[int]]:
    """The partitions of each member of ``group``, as the group coordinator says."""
    admin = AdminClient({"bootstrap.servers": servers})
    [future] = admin.describe_consumer_groups([group], request_timeout=10).values()
    description = future.result(timeout=15)
    return [{tp.partition for tp in m.assignment.topic_partitions} for m in description.members]


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    url = f"sqlite:///{tmp_path / 'sshtrail.db'}"
    migrate.upgrade(url)
    engine = make_engine(url)
    yield engine
    engine.dispose()


def test_a_member_killed_with_kill_9_is_dropped_and_the_other_takes_over(
    broker: KafkaCluster, store_topic: str, engine: Engine, tmp_path: Path
) -> None:
    """Two dynamic members (no instance id) share the topic under a steady load; one is
    killed with ``kill -9`` and sends no LeaveGroup. Kafka drops it once its session
    times out -- not at once, not never -- and the survivor takes its partitions from
    their committed offsets: every chunk on the topic is stored exactly once."""
    servers = broker.bootstrap_servers
    group = f"{store_topic}-store"
    config = write_config(tmp_path / "sshtrail.toml", servers, store_topic, str(engine.url))
    survivor = start_member(config, "store")
    victim = start_member(config, "store")
    produced = [0]
    stop = threading.Event()

    def steady_load() -> None:  # one small session every 50 ms, for 60 s at most
        deadline = time.monotonic() + 60
        while not stop.is_set() and time.monotonic() < deadline:
            produced[0] += produce(servers, store_topic, keyed(*recording(4, 512)))
            time.sleep(0.05)

    loader = threading.Thread(target=steady_load)
    try:
        wait_for(
            lambda: sorted(len(owned) for owned in members(servers, group)) == [1, 2],
            timeout=60,
            what="both members to own partitions",
        )
        loader.start()
        wait_for(lambda: chunk_count(engine) > 40, what="the load being stored")
        victim.process.kill()
        killed = time.monotonic()
        victim.process.wait(10)
        wait_for(
            lambda: members(servers, group) == [{0, 1, 2}],
            timeout=SESSION_TIMEOUT_S + 30,
            what="the survivor to own every partition",
            every=0.2,
        )
        takeover_s = time.monotonic() - killed
        stop.set()
        loader.join(30)
        wait_for(lambda: chunk_count(engine) == produced[0], timeout=60, what="every chunk")
        wait_for(lambda: sum(group_lag(servers, group, store_topic).values()) == 0)
    finally:
        stop.set()
        if loader.is_alive():
            loader.join(30)
        status, out, err = survivor.stop(signal.SIGTERM)
    assert status == 0, err
    # Dropped by its session timing out: a leave would have moved the partitions at
    # once, and the embedded broker never moves them at all.
    assert takeover_s >= SESSION_TIMEOUT_S - HEARTBEAT_S, takeover_s
    assert "chunks written" in out
    assert chunk_count(engine) == produced[0]
    assert_store_equals_topic(engine, servers, store_topic)
