"""``sshtrail lag`` row by row against Apache Kafka's own ``kafka-consumer-groups --describe``.

Lag is the log-end offset minus the committed offset, per group and
partition. Kafka's tool (``ConsumerGroupCommand`` from the kafka-tools jar, the
class behind ``kafka-consumer-groups.sh``) computes the same three numbers
from the same broker; a group held back by a member that owns its partitions
and commits nothing must read the same in both, in the table and in ``--json``.
"""

from __future__ import annotations

import csv
import io
import json
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Producer

from tests.support.cli import sshtrail
from tests.support.consumers import commit, create_topics, wait_for, write_config
from tests.support.kafka import KafkaCluster, run_tool

pytestmark = pytest.mark.integration

TOOL = "org.apache.kafka.tools.consumer.group.ConsumerGroupCommand"
#: Messages per partition, and what the group committed before it was held back
#: (partition 2 never committed: both tools must say so, not invent a zero).
PRODUCED = {0: 12, 1: 7, 2: 5}
COMMITTED = {0: 3, 1: 7}


@pytest.fixture
def held_back(broker: KafkaCluster, tmp_path: Path) -> Iterator[tuple[str, str, Path]]:
    """A topic, a group whose member owns every partition and commits nothing, settings."""
    servers = broker.bootstrap_servers
    topic = f"lagtool.{uuid.uuid4().hex[:10]}"
    group = f"{topic}-store"
    create_topics(servers, topic, topic + ".dlq", partitions=len(PRODUCED))
    producer = Producer({"bootstrap.servers": servers, "linger.ms": 5})
    for part, count in PRODUCED.items():
        for n in range(count):
            producer.produce(topic, b"m%d" % n, partition=part)
    assert producer.flush(30) == 0, "messages not acknowledged"
    commit(servers, group, topic, COMMITTED)
    config = write_config(
        tmp_path / "sshtrail.toml", servers, topic, f"sqlite:///{tmp_path / 's.db'}"
    )
    member = Consumer(
        {"bootstrap.servers": servers, "group.id": group, "enable.auto.commit": False}
    )
    member.subscribe([topic])
    stop = threading.Event()

    def hold() -> None:  # in the group, owning its partitions, reading and committing nothing
        while not stop.is_set():
            member.poll(0.2)

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        wait_for(
            lambda: (
                len(_kafka_rows(servers, group)) == len(PRODUCED)
                and all(row["CONSUMER-ID"] != "-" for row in _kafka_rows(servers, group).values())
            ),
            timeout=60,
            what="the member to own every partition",
        )
        yield topic, group, config
    finally:
        stop.set()
        holder.join(10)
        member.close()


def _kafka_rows(servers: str, group: str) -> dict[int, dict[str, str]]:
    """Kafka's describe table, one row per partition, keyed by its header's names."""
    done = run_tool(TOOL, "--bootstrap-server", servers, "--describe", "--group", group)
    assert done.returncode == 0, done.stderr
    lines = [line.split() for line in done.stdout.splitlines() if line.strip()]
    header = next(line for line in lines if line[:2] == ["GROUP", "TOPIC"])
    rows = [dict(zip(header, line, strict=False)) for line in lines if line[0] == group]
    return {int(row["PARTITION"]): row for row in rows}


def _offset(text: str) -> int | None:
    return None if text == "-" else int(text)


def test_lag_agrees_with_kafka_consumer_groups_row_by_row(
    broker: KafkaCluster, held_back: tuple[str, str, Path]
) -> None:
    topic, group, config = held_back
    kafka = {
        part: (_offset(row["CURRENT-OFFSET"]), int(row["LOG-END-OFFSET"]), _offset(row["LAG"]))
        for part, row in _kafka_rows(broker.bootstrap_servers, group).items()
    }
    # What Kafka's tool says is what was set up: the comparison below is not vacuous.
    assert kafka == {
        part: (COMMITTED.get(part), end, end - COMMITTED[part] if part in COMMITTED else None)
        for part, end in PRODUCED.items()
    }

    table = sshtrail(config, "lag", "--group", group, "--format", "csv", check=False)
    rows = list(csv.DictReader(io.StringIO(table.stdout.decode())))
    ours_csv = {
        int(row["partition"]): (
            int(row["current_offset"]) if row["current_offset"] else None,
            int(row["log_end_offset"]),
            int(row["lag"]) if row["current_offset"] else None,
        )
        for row in rows
        if row["topic"] == topic
    }
    assert ours_csv == kafka

    document = json.loads(sshtrail(config, "lag", "--group", group, "--json", check=False).stdout)
    [found] = document["groups"]
    ours_json = {
        row["partition"]: (
            row["current_offset"],
            row["log_end_offset"],
            row["lag"] if row["current_offset"] is not None else None,
        )
        for row in found["partitions"]
    }
    assert ours_json == kafka
    # Both name the owner: the member holds every partition.
    assert all(row["consumer_id"] for row in found["partitions"])
