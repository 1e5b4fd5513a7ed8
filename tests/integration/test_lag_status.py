"""``sshtrail lag`` judging real groups on the embedded broker: each status, the exit code,
an honest time lag, a group that does not exist; and ``lag-exporter`` scraped."""

from __future__ import annotations

import json
import math
import signal
import threading
import uuid
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient

from sshtrail.broker import free_port
from tests.support.cli import Running, sshtrail
from tests.support.consumers import commit, create_topics, wait_for, write_config
from tests.support.kafka import Broker
from tests.support.metrics import scrape, value
from tests.support.recordings import produce

pytestmark = pytest.mark.integration


class Topic:
    """A one-partition topic holding ten messages, and settings that read it."""

    def __init__(self, broker: Broker, tmp_path: Path) -> None:
        self.servers = broker.bootstrap_servers
        self.name = f"lag.{uuid.uuid4().hex[:10]}"
        create_topics(self.servers, self.name, self.name + ".dlq", partitions=1)
        produce(self.servers, self.name, [(b"k", b"message %d" % n) for n in range(10)])
        self.config = write_config(
            tmp_path / "sshtrail.toml", self.servers, self.name, f"sqlite:///{tmp_path / 's.db'}"
        )

    def commit(self, group: str, offset: int) -> None:
        """Commit ``offset`` for ``group``, as a member that then left would have."""
        commit(self.servers, group, self.name, {0: offset})

    def lag(self, group: str, *argv: str) -> tuple[int, dict[str, Any], str]:
        done = sshtrail(self.config, "lag", "--group", group, "--json", *argv, check=False)
        document = json.loads(done.stdout) if done.stdout else {}
        return done.returncode, document, done.stderr.decode()


@pytest.fixture
def topic(broker: Broker, tmp_path: Path) -> Topic:
    return Topic(broker, tmp_path)


def partition(document: dict[str, Any]) -> dict[str, Any]:
    [group] = document["groups"]
    [row] = group["partitions"]
    return row  # type: ignore[no-any-return]


def test_a_caught_up_group_is_ok_and_exits_0(topic: Topic) -> None:
    topic.commit("caught-up", 10)
    status, document, _ = topic.lag("caught-up")
    assert status == 0
    assert document["status"] == "OK"
    assert (partition(document)["lag"], partition(document)["time_lag_s"]) == (0, 0.0)


def test_a_group_with_lag_and_no_member_is_stop(topic: Topic) -> None:
    topic.commit("stopped", 4)
    table = sshtrail(topic.config, "lag", "--group", "stopped", "--format", "csv", check=False)
    assert table.returncode == 2
    header, line = table.stdout.decode().splitlines()
    assert header.startswith("group,topic,partition,current_offset,log_end_offset,")
    assert line.startswith(f"stopped,{topic.name},0,4,10,0,6,")
    assert ",STOP," in line
    status, document, _ = topic.lag("stopped")
    assert status == 2
    row = partition(document)
    assert (row["status"], row["lag"]) == ("STOP", 6)
    assert row["time_lag_s"] >= 0  # the message at offset 4 is there: its age is known
    assert document["groups"][0]["status"] == "STOP"


def test_a_member_that_holds_its_partition_and_commits_nothing_is_stall(topic: Topic) -> None:
    topic.commit("stuck", 3)
    member = Consumer(
        {
            "bootstrap.servers": topic.servers,
            "group.id": "stuck",
            "enable.auto.commit": False,
            "session.timeout.ms": 6000,
            "partition.assignment.strategy": "roundrobin",
        }
    )
    member.subscribe([topic.name])
    stop = threading.Event()

    def keep_polling() -> None:  # alive in the group, reading nothing it commits
        while not stop.is_set():
            member.poll(0.2)

    poller = threading.Thread(target=keep_polling)
    poller.start()
    try:
        wait_for(
            lambda: partition(topic.lag("stuck")[1])["consumer_id"] is not None,
            timeout=30,
            what="the member to own the partition",
        )
        status, document, _ = topic.lag("stuck", "--window", "3")
        assert status == 2
        row = partition(document)
        assert row["status"] == "STALL", row
        assert "stayed at 3" in row["reason"]
    finally:
        stop.set()
        poller.join(10)
        member.close()


def test_a_committed_offset_that_goes_back_is_rewind(topic: Topic) -> None:
    topic.commit("rewound", 8)
    watching = Running(
        "--config",
        str(topic.config),
        "lag",
        "--group",
        "rewound",
        "--json",
        "--watch",
        cwd=topic.config.parent,
    )
    try:
        first = json.loads(watching.expect('"status"'))  # a reading of 8 is made
        assert partition(first)["current_offset"] == 8
        topic.commit("rewound", 2)

        def rewound() -> bool:
            return bool(partition(json.loads(watching.expect('"status"')))["status"] == "REWIND")

        wait_for(rewound, timeout=30, what="the watch to judge the group REWIND")
    finally:
        watching.stop(signal.SIGINT)


def test_a_committed_offset_retention_passed_is_data_loss_with_time_lag_unknown(
    topic: Topic,
) -> None:
    topic.commit("behind", 2)
    admin = AdminClient({"bootstrap.servers": topic.servers})
    for future in admin.delete_records([TopicPartition(topic.name, 0, 6)]).values():
        future.result(10)
    status, document, _ = topic.lag("behind")
    assert status == 2
    row = partition(document)
    assert (row["status"], row["low_offset"], row["lag"]) == ("DATA-LOSS", 6, 8)
    assert row["time_lag_s"] is None  # never a made-up 0
    assert document["groups"][0]["time_lag_s"] is None
    table = sshtrail(topic.config, "lag", "--group", "behind", check=False).stdout.decode()
    assert "GROUP behind: DATA-LOSS, lag 8 messages, oldest unconsumed -" in table
    assert "4 messages were deleted before the group read them" in table


def test_a_group_that_does_not_exist_is_an_error(topic: Topic) -> None:
    status, document, err = topic.lag("bogus")
    assert status == 2
    assert document == {}
    assert "no consumer group 'bogus'" in err


def test_the_exporter_serves_every_series_from_the_first_scrape(topic: Topic) -> None:
    topic.commit("stopped", 4)
    port = free_port()
    exporter = Running(
        "--config",
        str(topic.config),
        "lag-exporter",
        "--group",
        "stopped",
        "--group",
        "bogus",
        "--port",
        str(port),
        "--interval",
        "1",
        cwd=topic.config.parent,
    )
    try:
        exporter.expect("metrics on http://127.0.0.1")
        first = scrape(port)
        where = {"group": "stopped", "topic": topic.name, "partition": "0"}
        for name in (
            "sshtrail_consumergroup_lag",
            "sshtrail_consumergroup_lag_seconds",
            "sshtrail_consumergroup_committed_offset",
            "sshtrail_consumergroup_log_end_offset",
        ):
            assert (name, tuple(sorted(where.items()))) in first, name
        for each in ("OK", "WARN", "STALL", "STOP", "REWIND", "DATA-LOSS"):
            value(first, "sshtrail_consumergroup_status", **where, status=each)
            value(first, "sshtrail_consumergroup_group_status", group="bogus", status=each)
        assert value(first, "sshtrail_lag_exporter_errors_total", group="bogus") >= 0
        # No gateway given: end-to-end lag is unknown, and says so.
        assert math.isnan(value(first, "sshtrail_end_to_end_lag_seconds", group="stopped"))

        def read() -> bool:  # each group read once: the exporter reads them in turn
            samples = scrape(port)
            return (
                value(samples, "sshtrail_consumergroup_up", group="stopped") == 1
                and value(samples, "sshtrail_lag_exporter_errors_total", group="bogus") >= 1
            )

        wait_for(read, timeout=30, what="a reading of each group")
        samples = scrape(port)
        assert value(samples, "sshtrail_consumergroup_lag", **where) == 6
        assert value(samples, "sshtrail_consumergroup_committed_offset", **where) == 4
        assert value(samples, "sshtrail_consumergroup_log_end_offset", **where) == 10
        assert value(samples, "sshtrail_consumergroup_status", **where, status="STOP") == 1
        assert value(samples, "sshtrail_consumergroup_status", **where, status="OK") == 0
        assert (
            value(samples, "sshtrail_consumergroup_group_status", group="stopped", status="STOP")
            == 1
        )
        assert value(samples, "sshtrail_consumergroup_up", group="bogus") == 0
        assert value(samples, "sshtrail_lag_exporter_errors_total", group="bogus") >= 1
        assert not math.isnan(value(samples, "sshtrail_consumergroup_lag_seconds", **where))
    finally:
        status, out, _ = exporter.stop(signal.SIGTERM)
    assert status == 0
    assert "lag-exporter: stopped (SIGTERM)" in out
