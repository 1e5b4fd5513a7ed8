"""``sshtrail lag`` on Apache Kafka: one reading of a group that holds a partition and
reads nothing is not OK (issue 40)."""

from __future__ import annotations

import json
import threading
import time
import uuid
from pathlib import Path

import pytest
from confluent_kafka import Consumer
from confluent_kafka.admin import AdminClient

from tests.support.cli import sshtrail
from tests.support.consumers import commit, create_topics, wait_for, write_config
from tests.support.kafka import KafkaCluster
from tests.support.recordings import produce

pytestmark = pytest.mark.integration

#: write_config's session.timeout.ms, in seconds: the unread limit of `lag` here.
SESSION_TIMEOUT_S = 6.0


def owned(servers: str, group: str) -> bool:
    """Whether a member of ``group`` owns a partition, as the coordinator says."""
    admin = AdminClient({"bootstrap.servers": servers})
    [future] = admin.describe_consumer_groups([group], request_timeout=10).values()
    return any(m.assignment.topic_partitions for m in future.result(timeout=15).members)


def test_one_reading_of_a_partition_held_and_not_read_is_warn(
    broker: KafkaCluster, tmp_path: Path
) -> None:
    """A member owns the partition, stays in the group and commits nothing -- as a
    fenced member does until it ends, or a zombie the embedded broker keeps. Before
    issue 40 a single reading called that ``OK`` ("lag being worked off"); once the
    oldest unread message is older than the session timeout it is ``WARN`` (exit 1),
    and the reason says that ``--window`` tells slow from stuck -- which then says
    ``STALL``."""
    servers = broker.bootstrap_servers
    topic, group = f"unread.{uuid.uuid4().hex[:10]}", "held"
    create_topics(servers, topic, topic + ".dlq", partitions=1)
    published = time.time()
    produce(servers, topic, [(b"k", b"message %d" % n) for n in range(10)])
    commit(servers, group, topic, {0: 3})
    config = write_config(
        tmp_path / "sshtrail.toml", servers, topic, f"sqlite:///{tmp_path / 's.db'}"
    )
    member = Consumer(
        {
            "bootstrap.servers": servers,
            "group.id": group,
            "enable.auto.commit": False,
            "session.timeout.ms": int(SESSION_TIMEOUT_S * 1000),
        }
    )
    member.subscribe([topic])
    stop = threading.Event()

    def keep_polling() -> None:  # alive in the group, committing nothing
        while not stop.is_set():
            member.poll(0.2)

    poller = threading.Thread(target=keep_polling)
    poller.start()
    try:
        wait_for(lambda: owned(servers, group), timeout=30, what="the member to own it")
        # The message at the committed offset must outlive the unread limit.
        time.sleep(max(0.0, published + SESSION_TIMEOUT_S + 1 - time.time()))
        once = sshtrail(config, "lag", "--group", group, "--json", check=False)
        table = sshtrail(config, "lag", "--group", group, check=False)
        window = sshtrail(config, "lag", "--group", group, "--window", "3", "--json", check=False)
    finally:
        stop.set()
        poller.join(10)
        member.close()
    assert once.returncode == 1, once.stderr
    document = json.loads(once.stdout)
    [row] = document["groups"][0]["partitions"]
    assert (row["status"], row["lag"], row["consumer_id"] is not None) == ("WARN", 7, True)
    assert row["time_lag_s"] > SESSION_TIMEOUT_S
    assert row["reason"].startswith("lag 7 and the oldest unread message is "), row
    assert row["reason"].endswith(
        "s old, over the 6 s session timeout: far behind, or nobody reads this partition; "
        "--window 30 tells slow (OK) from stuck (STALL)"
    ), row
    assert document["status"] == "WARN"
    assert table.returncode == 1
    assert "0: lag 7 and the oldest unread message is " in table.stdout.decode()
    assert window.returncode == 2, window.stderr
    [judged] = json.loads(window.stdout)["groups"][0]["partitions"]
    assert judged["status"] == "STALL", judged
