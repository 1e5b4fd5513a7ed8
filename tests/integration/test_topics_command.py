"""``sshtrail topics`` against the real broker: creates once, describes, fails in one line."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from sshtrail.broker import free_port
from tests.support.cli import Running
from tests.support.kafka import Broker

pytestmark = pytest.mark.integration


def test_topics_creates_what_is_missing_then_only_describes(tmp_path: Path, broker: Broker) -> None:
    name = f"test.topics.{uuid.uuid4().hex[:8]}"
    env = {
        "SSHTRAIL_KAFKA__BOOTSTRAP_SERVERS": broker.bootstrap_servers,
        "SSHTRAIL_KAFKA__TOPIC": name,
        "SSHTRAIL_KAFKA__DLQ_TOPIC": f"{name}.dlq",
        "SSHTRAIL_KAFKA__PARTITIONS": "4",
        "SSHTRAIL_KAFKA__TOPIC_CONFIG__RETENTION.MS": "86400000",
        "SSHTRAIL_CONTROL__TOPIC": f"{name}.control",
    }
    status, out, err = Running("topics", cwd=tmp_path, env=env).wait()
    assert status == 0, err
    assert out.splitlines() == [
        f"{name}  4 partitions, replication factor 1 (created)",
        f"{name}.dlq  4 partitions, replication factor 1 (created)",
        f"{name}.control  4 partitions, replication factor 1 (created)",
    ]
    env["SSHTRAIL_KAFKA__PARTITIONS"] = "8"  # an existing topic is never changed
    status, out, err = Running("topics", cwd=tmp_path, env=env).wait()
    assert status == 0, err
    assert out.splitlines()[0] == f"{name}  4 partitions, replication factor 1 (exists)"
    assert "note: kafka.partitions is 8; the topic keeps 4" in out


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
