"""``sshtrail up --kafka`` on a three-node Apache Kafka, as a person would run it.

No embedded broker starts: the topics are created as docs/operations.md
recommends (replication factor 3 on three brokers, ``min.insync.replicas`` 2,
30 days' retention, the control topic compacted), a session through the demo
gateway is stored and found; topics made otherwise are checked, each
difference said plainly, and those that break a promise start nothing.
"""

from __future__ import annotations

import json
import shlex
import signal
import socket
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    NewTopic,
    ResourceType,
)

from sshtrail.broker import free_port
from tests.support.cli import Running
from tests.support.kafka import KafkaCluster, KafkaUnavailable
from tests.support.services import unavailable
from tests.support.waiting import wait_for

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaCluster]:
    """Three KRaft nodes on loopback, for this module's tests."""
    kafka = KafkaCluster(tmp_path_factory.mktemp("kafka3"), nodes=3)
    try:
        kafka.start(timeout=180)
    except KafkaUnavailable as exc:
        kafka.stop(timeout=5)
        unavailable(f"a three-node Apache Kafka cannot start: {exc}")
    yield kafka
    kafka.stop(timeout=30)


def _ports() -> dict[str, str]:
    return {
        # Were an embedded broker started by mistake, it would listen here.
        "SSHTRAIL_BROKER__PORT": str(free_port()),
        "SSHTRAIL_GATEWAY__PORT": str(free_port()),
        "SSHTRAIL_WEB__PORT": str(free_port()),
    }


def _listening(port: str) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", int(port))) == 0


def _command(folder: Path, *argv: str) -> tuple[int, str]:
    status, out, _ = Running(*argv, cwd=folder).wait(60)
    return status, out


def _configs(admin: AdminClient, name: str) -> dict[str, str]:
    [future] = admin.describe_configs([ConfigResource(ResourceType.TOPIC, name)]).values()
    return {key: entry.value for key, entry in future.result(30).items()}


@pytest.mark.timeout(600)
def test_up_demo_on_kafka_creates_the_topics_as_recommended_and_records_a_session(
    tmp_path: Path, cluster: KafkaCluster
) -> None:
    servers = cluster.bootstrap_servers
    env = _ports()
    up = Running("up", "--demo", "--kafka", servers, cwd=tmp_path, env=env)
    try:
        kafka = up.expect("kafka  ", timeout=120)
        assert f"kafka  {servers}, no embedded broker (from --kafka" in kafka
        topics = up.expect("topics  ")
        assert (
            "sshtrail.sessions (6 partitions, replication factor 3, min.insync.replicas 2, "
            "retention 30 days), dead letters in sshtrail.sessions.dlq, requests in "
            "sshtrail.control, access-log heads in sshtrail.access-log (created)"
        ) in topics
        command = up.expect("ssh -i").strip()
        up.expect("ready", timeout=120)
        assert not [line for line in up.lines if "warning" in line or "broker  " in line]
        assert not _listening(env["SSHTRAIL_BROKER__PORT"])

        # The session, exactly as the printed command makes it.
        argv = [*shlex.split(command), "-o", "BatchMode=yes", "echo kafka-$((6*7)); exit 3"]
        done = subprocess.run(argv, capture_output=True, timeout=60, check=False)
        assert (done.stdout, done.returncode) == (b"kafka-42\n", 3)

        def stored() -> bool:
            status, out = _command(tmp_path, "sessions", "--json")
            return status == 0 and [(s["status"], s["exit_status"]) for s in json.loads(out)] == [
                ("closed", 3)
            ]

        wait_for(stored, timeout=90, every=1, what="the session in `sshtrail sessions`")
        wait_for(
            lambda: "[kafka-42]" in _command(tmp_path, "search", "kafka-42")[1],
            timeout=90,
            every=1,
            what="the session's output in `sshtrail search`",
        )
        [session] = json.loads(_command(tmp_path, "sessions", "--json")[1])
        assert (session["operator"], session["target"]) == ("demo", "demo")
        status, table = _command(tmp_path, "sessions")
        assert status == 0
        assert session["short_id"] in table
        status, found = _command(tmp_path, "search", "kafka-42")
        assert status == 0
        assert found.startswith(f"{session['short_id']}  demo@demo")
        assert [line.split() for line in found.splitlines() if "[kafka-42]" in line] == [
            ["+0:00:00", "output", "[kafka-42]"]
        ]
    finally:
        status, out, err = up.stop(signal.SIGINT, timeout=90)
    assert status == 0, err
    assert "stopped  on SIGINT" in out

    admin = AdminClient({"bootstrap.servers": servers})
    metadata = admin.list_topics(timeout=30).topics
    for name in (
        "sshtrail.sessions",
        "sshtrail.sessions.dlq",
        "sshtrail.control",
        "sshtrail.access-log",
    ):
        partitions = metadata[name].partitions.values()
        assert len(partitions) == 6
        assert {len(partition.replicas) for partition in partitions} == {3}, name
        configs = _configs(admin, name)
        assert configs["min.insync.replicas"] == "2", name
    for name in ("sshtrail.sessions", "sshtrail.sessions.dlq"):
        configs = _configs(admin, name)
        assert (configs["cleanup.policy"], configs["retention.ms"]) == ("delete", "2592000000")
    assert _configs(admin, "sshtrail.control")["cleanup.policy"] == "compact"
    assert _configs(admin, "sshtrail.access-log")["cleanup.policy"] == "compact"


@pytest.mark.timeout(600)
def test_up_on_kafka_reports_each_difference_and_refuses_what_breaks_a_promise(
    tmp_path: Path, cluster: KafkaCluster
) -> None:
    servers = cluster.bootstrap_servers
    prefix = f"made.{uuid.uuid4().hex[:8]}"
    sessions, dead_letters, control = f"{prefix}.sessions", f"{prefix}.dlq", f"{prefix}.control"
    admin = AdminClient({"bootstrap.servers": servers})
    made = admin.create_topics(
        [
            # One partition on one broker, kept a day, and a session already on it.
            NewTopic(
                sessions, 1, 1, config={"min.insync.replicas": "1", "retention.ms": "86400000"}
            ),
            NewTopic(dead_letters, 1, 3, config={"min.insync.replicas": "1"}),
            NewTopic(control, 1, 3, config={"cleanup.policy": "delete"}),  # not compacted
        ]
    )
    for future in made.values():
        future.result(60)
    producer = Producer({"bootstrap.servers": servers})
    producer.produce(sessions, key=str(uuid.uuid4()).encode(), value=b"a recording")
    assert producer.flush(30) == 0
    env = {
        **_ports(),
        "SSHTRAIL_KAFKA__TOPIC": sessions,
        "SSHTRAIL_KAFKA__DLQ_TOPIC": dead_letters,
        "SSHTRAIL_CONTROL__TOPIC": control,
        "SSHTRAIL_CONSUMER__STORE_GROUP": f"{prefix}-store",
        "SSHTRAIL_CONSUMER__INDEX_GROUP": f"{prefix}-index",
    }

    status, out, err = Running("up", "--kafka", servers, cwd=tmp_path, env=env).wait(180)
    assert status == 1, err
    warnings = [line.strip() for line in out.splitlines() if line.strip().startswith("warning")]
    recommended = "recommended 3 (the cluster has 3 brokers)"
    assert warnings == [
        f"warning  {sessions}: replication factor 1, {recommended}: a partition is "
        "unavailable while its one broker is down, and lost with its disk; up goes on",
        f"warning  {sessions}: retention 1 day (retention.ms 86400000), recommended 30 days: "
        "reprocess rebuilds a store from 1 day back at most, and a group down longer than "
        "that loses sessions (DATA-LOSS); up goes on",
        f"warning  {dead_letters}: partitions 1, kafka.partitions is 6: dead letters keep no "
        "order; up goes on",
        f"warning  {dead_letters}: min.insync.replicas 1, recommended 2 for 3 replicas: a write "
        "is acknowledged once 1 replica holds it, and lost if that broker fails before the "
        "others copy it; up goes on",
        # The broker's default, as nothing was set when it was made.
        f"warning  {dead_letters}: retention 7 days (retention.ms 604800000), recommended 30 "
        "days: dead letters and records of lost offsets go after 7 days, and completeness no "
        "longer reports them; up goes on",
        f"warning  {control}: partitions 1, kafka.partitions is 6: it holds no messages; to "
        "have 6, delete it and sshtrail creates it again, or set kafka.partitions = 1; up goes "
        "on",
    ]
    assert err.splitlines() == [
        f"sshtrail: error: the topics on {servers} cannot be used as they are; up started nothing:",
        f"  {sessions}: partitions 1, kafka.partitions is 6: it holds 1 message, and sshtrail "
        "cannot tell whether its partition count changed while it held messages (a session "
        "open during a change is split across two partitions, and watch and the live view "
        "look for older sessions on the wrong one); if it is meant to have 1, set "
        "kafka.partitions = 1",
        f"  {control}: cleanup.policy delete, must be compact: deletion by retention would drop "
        "operator locks: a gateway started after that lets a locked operator in",
        "fix them as docs/operations.md (Kafka) says; sshtrail never changes a topic",
    ]
    assert "database" not in out
    assert "ready" not in out
    assert not (tmp_path / "sshtrail-data" / "sshtrail.db").exists()

    # What the error says to do: the partition count confirmed, the control topic
    # compacted (kafka-configs --alter --add-config cleanup.policy=compact).
    env["SSHTRAIL_KAFKA__PARTITIONS"] = "1"
    compact = ConfigResource(
        ResourceType.TOPIC,
        control,
        incremental_configs=[
            ConfigEntry("cleanup.policy", "compact", incremental_operation=AlterConfigOpType.SET)
        ],
    )
    for future in admin.incremental_alter_configs([compact]).values():
        future.result(30)
    wait_for(
        lambda: _configs(admin, control)["cleanup.policy"] == "compact",
        timeout=30,
        what="the control topic compacted",
    )
    up = Running("up", "--kafka", servers, cwd=tmp_path, env=env)
    try:
        up.expect("ready", timeout=180)
    finally:
        status, out, err = up.stop(signal.SIGINT, timeout=90)
    assert status == 0, err
    said = [line.strip() for line in up.lines]
    assert [line for line in said if line.startswith("warning")] == [
        warning for warning in warnings if ": partitions 1, kafka.partitions is 6" not in warning
    ]
    assert any(line.startswith("database") for line in said)


@pytest.mark.parametrize(
    ("servers", "said"),
    [
        ("kafka-1", "--kafka: bootstrap server 'kafka-1' is not HOST:PORT"),
        (" ", "--kafka: give HOST:PORT[,HOST:PORT...]"),
    ],
)
def test_up_with_a_bad_kafka_exits_2_saying_why(tmp_path: Path, servers: str, said: str) -> None:
    status, out, err = Running("up", "--kafka", servers, cwd=tmp_path).wait(60)
    assert status == 2
    assert out == ""
    assert err.strip() == f"sshtrail: error: {said}"
