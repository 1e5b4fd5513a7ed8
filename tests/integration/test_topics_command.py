"""``sshtrail topics`` against the real broker: creates once as recommended, then checks
what it finds; fails in one line without a broker."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic, ResourceType

from sshtrail.broker import free_port
from tests.support.cli import Running
from tests.support.kafka import Broker

pytestmark = pytest.mark.integration


def _env(broker: Broker, name: str) -> dict[str, str]:
    return {
        "SSHTRAIL_KAFKA__BOOTSTRAP_SERVERS": broker.bootstrap_servers,
        "SSHTRAIL_KAFKA__TOPIC": name,
        "SSHTRAIL_KAFKA__DLQ_TOPIC": f"{name}.dlq",
        "SSHTRAIL_CONTROL__TOPIC": f"{name}.control",
        "SSHTRAIL_WEB__ACCESS_LOG_TOPIC": f"{name}.access",
    }


def test_topics_creates_what_is_missing_then_only_describes(tmp_path: Path, broker: Broker) -> None:
    name = f"test.topics.{uuid.uuid4().hex[:8]}"
    env = {
        **_env(broker, name),
        "SSHTRAIL_KAFKA__PARTITIONS": "4",
        "SSHTRAIL_KAFKA__TOPIC_CONFIG__RETENTION.MS": "86400000",
    }
    status, out, err = Running("topics", cwd=tmp_path, env=env).wait()
    assert status == 0, err
    # One broker: one replica, and every replica in sync before a write counts.
    assert out.splitlines() == [
        f"{name}  4 partitions, replication factor 1, min.insync.replicas 1, retention 1 day "
        "(created)",
        f"{name}.dlq  4 partitions, replication factor 1, min.insync.replicas 1, retention 1 "
        "day (created)",
        f"{name}.control  4 partitions, replication factor 1, min.insync.replicas 1, compacted "
        "(created)",
        f"{name}.access  4 partitions, replication factor 1, min.insync.replicas 1, compacted "
        "(created)",
    ]
    env["SSHTRAIL_KAFKA__PARTITIONS"] = "8"  # an existing topic is never changed
    status, out, err = Running("topics", cwd=tmp_path, env=env).wait()
    assert status == 0, err
    lines = out.splitlines()
    assert lines[0] == (
        f"{name}  4 partitions, replication factor 1, min.insync.replicas 1, retention 1 day "
        "(exists)"
    )
    assert lines[4:] == [
        f"warning: {name}: partitions 4, kafka.partitions is 8: it holds no messages; to have "
        "8, delete it and sshtrail creates it again, or set kafka.partitions = 4; used as it is",
        f"warning: {name}.dlq: partitions 4, kafka.partitions is 8: dead letters keep no order; "
        "used as it is",
        f"warning: {name}.control: partitions 4, kafka.partitions is 8: it holds no messages; to "
        "have 8, delete it and sshtrail creates it again, or set kafka.partitions = 4; used as "
        "it is",
    ]  # the access log's heads topic: read whole, any partition count will do
    admin = AdminClient({"bootstrap.servers": broker.bootstrap_servers})
    [described] = admin.describe_configs(
        [ConfigResource(ResourceType.TOPIC, f"{name}.control")]
    ).values()
    assert described.result(30)["cleanup.policy"].value == "compact"


def test_topics_refuses_what_breaks_a_promise_and_changes_nothing(
    tmp_path: Path, broker: Broker
) -> None:
    name = f"test.topics.{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": broker.bootstrap_servers})
    made = admin.create_topics(
        [
            NewTopic(name, 2, 1),
            NewTopic(f"{name}.dlq", 6, 1, config={"cleanup.policy": "compact"}),
            NewTopic(f"{name}.control", 6, 1),  # not compacted
        ]
    )
    for future in made.values():
        future.result(30)
    producer = Producer({"bootstrap.servers": broker.bootstrap_servers})
    producer.produce(name, key=b"01a2", value=b"a recording")
    assert producer.flush(30) == 0

    status, out, err = Running("topics", cwd=tmp_path, env=_env(broker, name)).wait()
    assert status == 1
    assert out, err  # what topics said instead, if it printed no table
    assert out.splitlines()[0] == (
        f"{name}  2 partitions, replication factor 1, min.insync.replicas 1, retention 7 days "
        "(exists)"
    )
    refused = err.splitlines()
    assert refused[0] == (
        f"sshtrail: error: the topics on {broker.bootstrap_servers} cannot be used as they are; "
        "start nothing on them:"
    )
    assert refused[1].startswith(f"  {name}: partitions 2, kafka.partitions is 6: it holds 1 ")
    assert refused[2].startswith(f"  {name}.dlq: cleanup.policy compact, must be delete: ")
    assert refused[3].startswith(f"  {name}.control: cleanup.policy delete, must be compact: ")
    assert len(refused) == 5
    described = admin.describe_configs([ConfigResource(ResourceType.TOPIC, f"{name}.control")])
    [control] = described.values()
    assert control.result(30)["cleanup.policy"].value == "delete"  # left as it was


def test_topics_cannot_create_more_replicas_than_brokers(tmp_path: Path, broker: Broker) -> None:
    name = f"test.topics.{uuid.uuid4().hex[:8]}"
    env = {**_env(broker, name), "SSHTRAIL_KAFKA__REPLICATION_FACTOR": "3"}
    status, out, err = Running("topics", cwd=tmp_path, env=env).wait()
    assert status == 1
    assert out == ""
    assert err.strip() == (
        f"sshtrail: error: cannot create {name}, {name}.dlq, {name}.control, {name}.access with "
        "replication "
        f"factor 3 (kafka.replication_factor): {broker.bootstrap_servers} has 1 broker, and a "
        "partition cannot have more replicas than there are brokers"
    )


def test_topics_without_a_broker_fails_in_one_line_after_waiting(tmp_path: Path) -> None:
    env = {"SSHTRAIL_KAFKA__BOOTSTRAP_SERVERS": f"127.0.0.1:{free_port()}"}
    status, out, err = Running("topics", "--wait", "1", cwd=tmp_path, env=env).wait(60)
    assert status == 1
    assert out == ""
    assert err.strip().splitlines()[-1].startswith("sshtrail: error: cannot reach 127.0.0.1:")
    assert "FAIL|" not in err  # none of librdkafka's own log lines


@pytest.mark.parametrize("wait", ["-1", "soon", "99999"])
def test_topics_rejects_a_bad_wait(tmp_path: Path, wait: str) -> None:
    status, _, err = Running("topics", "--wait", wait, cwd=tmp_path).wait()
    assert status == 2
    assert "--wait" in err
