"""Operator locks listed and changed, on a real Kafka broker: ``sshtrail locks`` in a
child process, and the console's Locks page through its HTTP interface. No gateway runs
here, so requests go unanswered (``lock`` exits 1, the page says 202) but stay on the
control topic, which is what the list is read from. The gateways applying them are
tests/e2e/test_control.py."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import Engine, select
from starlette.testclient import TestClient

from consumer.web.app import create_app
from sshtrail import control
from sshtrail.settings import Settings
from sshtrail.tables import ACCESS_LOG
from tests.integration.test_web_http import HASH, sign_in
from tests.support.cli import sshtrail
from tests.support.consumers import create_topics
from tests.support.gateway import toml_value
from tests.support.kafka import Broker

# The store only keeps the access log here: SQLite is enough (and halves the broker's time).
pytestmark = [
    pytest.mark.integration,
    pytest.mark.parametrize("database_url", ["sqlite"], indirect=True),
]


@pytest.fixture
def store(store_engine: Engine) -> Engine:
    return store_engine


@pytest.fixture
def control_topic(broker: Broker, topic_name: str) -> str:
    create_topics(broker.bootstrap_servers, topic_name)
    return topic_name


@pytest.fixture
def access_log_topic(broker: Broker, topic_name: str) -> str:
    """The heads of the access log. Without the topic every command that logs (each one
    here) waits out the producer's flush on exit: five seconds a command."""
    name = f"{topic_name}.access-log"
    create_topics(broker.bootstrap_servers, name)
    return name


@pytest.fixture
def config(
    tmp_path: Path, broker: Broker, control_topic: str, access_log_topic: str, store: Engine
) -> Path:
    path = tmp_path / "sshtrail.toml"
    path.write_text(
        "\n".join(
            [
                f"state_dir = {toml_value(str(tmp_path / 'state'))}",
                "[kafka]",
                f"bootstrap_servers = {toml_value(broker.bootstrap_servers)}",
                "[control]",
                f"topic = {toml_value(control_topic)}",
                "[web]",
                f"access_log_topic = {toml_value(access_log_topic)}",
                "[database]",
                f"url = {toml_value(store.url.render_as_string(hide_password=False))}",
            ]
        )
        + "\n"
    )
    return path


def on_topic(broker: Broker, topic: str) -> list[tuple[bytes, bytes]]:
    """Every message of ``topic``, as (key, value), read from its beginning."""
    consumer = Consumer(
        {"bootstrap.servers": broker.bootstrap_servers, "group.id": uuid.uuid4().hex}
    )
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        ends = {p: consumer.get_watermark_offsets(TopicPartition(topic, p))[1] for p in partitions}
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
        found: list[tuple[bytes, bytes]] = []
        read = dict.fromkeys(partitions, 0)
        while any(read[p] < ends[p] for p in partitions):
            message = consumer.poll(5)
            assert message is not None, "the topic was not read to its end"
            partition, offset = message.partition(), message.offset()
            if message.error() is None and partition is not None and offset is not None:
                read[partition] = offset + 1
                found.append((message.key() or b"", message.value() or b""))
        return found
    finally:
        consumer.close()


def signed(
    broker: Broker, topic: str, state_dir: Path
) -> list[tuple[bytes, bytes, control.Message]]:
    """The messages of ``topic`` the control key of ``state_dir`` signed, decoded."""
    trusted = control.parse_keys(
        [(state_dir / "control" / "control_ed25519_key.pub").read_text()], "test"
    )
    return [(k, v, control.decode(v, trusted, k)) for k, v in on_topic(broker, topic)]


def produce(broker: Broker, topic: str, key: bytes, value: bytes) -> None:
    producer = Producer({"bootstrap.servers": broker.bootstrap_servers})
    producer.produce(topic, value, key)
    assert producer.flush(10) == 0


def listed(config: Path, *options: str) -> tuple[int, list[dict[str, object]]]:
    done = sshtrail(config, "locks", "--json", *options, check=False)
    assert done.returncode in (0, 1), done.stderr
    return done.returncode, json.loads(done.stdout)


def test_locks_lists_the_request_in_force_of_each_operator(
    config: Path, broker: Broker, control_topic: str, store: Engine
) -> None:
    for argv in (
        ("lock", "alice", "--reason", "incident 7", "--as", "ann"),
        ("lock", "bob", "--reason", "leaving", "--as", "ann", "--end-sessions"),
        ("unlock", "bob", "--reason", "stays after all", "--as", "tom"),
    ):
        sent = sshtrail(config, *argv, "--wait", "1", check=False)
        assert sent.returncode == 1, sent.stderr  # no gateway answers here
        assert b"the request is on" in sent.stderr
    status, locks = listed(config)
    assert status == 0
    assert [(row["operator"], row["auditor"], row["reason"]) for row in locks] == [
        ("alice", "ann", "incident 7")
    ]
    table = sshtrail(config, "locks")
    assert re.search(rb"alice +locked +ann +\S+ \S+ +incident 7", table.stdout), table.stdout
    assert b"bob" not in table.stdout

    # A copy of bob's lock re-sent after his unlock is older than it: not in force.
    [(key, value)] = [
        (k, v)
        for k, v, message in signed(broker, control_topic, config.parent / "state")
        if isinstance(message, control.Lock) and message.operator == "bob"
    ]
    produce(broker, control_topic, key, value)
    # A lock signed by a key the gateways do not trust is not a lock.
    forged = control.Lock(
        request_id=control.new_id(),
        at=control.now_ns(),
        operator="carol",
        auditor="mallory",
        reason="forged",
    )
    produce(
        broker,
        control_topic,
        control.key_of(forged),
        control.encode(forged, Ed25519PrivateKey.generate()),
    )
    assert [row["operator"] for row in listed(config)[1]] == ["alice"]
    status, everyone = listed(config, "--all")
    assert [(row["operator"], row["locked"], row["reason"]) for row in everyone] == [
        ("alice", True, "incident 7"),
        ("bob", False, "stays after all"),
    ]

    sshtrail(config, "unlock", "alice", "--reason", "cleared", "--wait", "1", check=False)
    status, locks = listed(config)
    assert (status, locks) == (1, [])
    with store.connect() as conn:
        logged = conn.execute(select(ACCESS_LOG.c.action, ACCESS_LOG.c.detail)).all()
    assert ("locks", "locked") in [tuple(row) for row in logged]
    assert ("locks", "all") in [tuple(row) for row in logged]


# -- the console's Locks page ----------------------------------------------------------


@pytest.fixture
def client(
    tmp_path: Path, broker: Broker, control_topic: str, store: Engine
) -> Iterator[TestClient]:
    url = store.url.render_as_string(hide_password=False)
    settings = msgspec.convert(
        {
            "state_dir": str(tmp_path / "state"),
            "database": {"url": url},
            "search": {"url": url},
            "kafka": {"bootstrap_servers": broker.bootstrap_servers},
            "control": {"topic": control_topic},
            "auditors": [
                {"name": "ann", "password_hash": HASH, "role": "admin"},
                {"name": "tom", "password_hash": HASH},
            ],
        },
        Settings,
    )
    with TestClient(create_app(settings), base_url="http://127.0.0.1") as test_client:
        yield test_client


def csrf(client: TestClient) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', client.get("/sessions").text)
    assert found is not None
    return found[1]


def requests_on(broker: Broker, topic: str, state_dir: Path) -> list[control.Message]:
    return [message for _, _, message in signed(broker, topic, state_dir)]


def actions(store: Engine, auditor: str) -> list[tuple[str, str]]:
    with store.connect() as conn:
        rows = conn.execute(
            select(ACCESS_LOG.c.action, ACCESS_LOG.c.detail)
            .where(ACCESS_LOG.c.auditor == auditor)
            .order_by(ACCESS_LOG.c.id)
        ).all()
    return [(row.action, row.detail) for row in rows]


def test_only_admins_see_or_change_locks(
    client: TestClient, broker: Broker, control_topic: str, store: Engine
) -> None:
    sign_in(client, "tom")
    assert 'href="/locks"' not in client.get("/sessions").text
    assert client.get("/locks").status_code == 403
    assert client.get("/locks?part=rows").status_code == 403
    form = {"csrf": csrf(client), "operator": "alice", "reason": "mine"}
    assert client.post("/locks/lock", data=form).status_code == 403
    assert client.post("/locks/unlock", data=form).status_code == 403
    denied = [detail for action, detail in actions(store, "tom") if action == "denied"]
    assert denied == [
        "the locks page: admins only",
        "the locks page: admins only",
        "lock: admins only",
        "unlock: admins only",
    ]
    assert on_topic(broker, control_topic) == []


def test_an_admin_locks_and_unlocks_from_the_page(
    client: TestClient, broker: Broker, control_topic: str, store: Engine, tmp_path: Path
) -> None:
    sign_in(client, "ann")
    page = client.get("/locks")
    assert page.status_code == 200
    assert 'href="/locks"' in page.text
    assert "No operator is locked." in page.text
    form = {"operator": "alice", "reason": "incident 7", "end_sessions": "1"}
    # Without the page's token nothing is sent.
    assert client.post("/locks/lock", data={**form, "csrf": "forged"}).status_code == 403
    assert client.post("/locks/lock", data=form).status_code == 403
    assert (
        client.post("/locks/lock", data={**form, "csrf": csrf(client), "reason": " "}).status_code
        == 400
    )
    assert on_topic(broker, control_topic) == []

    sent = client.post("/locks/lock", data={**form, "csrf": csrf(client)})
    assert sent.status_code == 202, sent.text  # on the topic, no gateway to answer here
    assert "No gateway answered" in sent.text
    [lock] = requests_on(broker, control_topic, tmp_path / "state")
    assert isinstance(lock, control.Lock)
    assert (lock.operator, lock.auditor, lock.reason, lock.end_sessions) == (
        "alice",
        "ann",
        "incident 7",
        True,
    )
    rows = client.get("/locks?part=rows").text
    assert re.search(r'data-operator="alice">\s*<td>alice</td><td>ann</td>', rows), rows
    assert "incident 7" in rows

    sent = client.post(
        "/locks/unlock", data={"csrf": csrf(client), "operator": "alice", "reason": "cleared"}
    )
    assert sent.status_code == 202, sent.text
    unlock = requests_on(broker, control_topic, tmp_path / "state")[-1]
    assert isinstance(unlock, control.Unlock)
    assert unlock.reason == "cleared"
    assert 'data-operator="alice"' not in client.get("/locks?part=rows").text
    assert [a for a in actions(store, "ann") if a[0] in ("locks", "lock", "unlock")] == [
        ("locks", ""),
        ("lock", "alice (and end their sessions): incident 7"),
        ("unlock", "alice: cleared"),
    ]
