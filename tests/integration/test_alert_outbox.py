"""The alert outbox against real Apache Kafka and a real store (SQLite and PostgreSQL):
alerts a member published and did not live to mark are found on the topic by the member
after it and not sent twice; webhooks get the alert's id as an ``Idempotency-Key``."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Producer
from sqlalchemy import Engine, insert, select

from consumer.alertoutbox import AlertOutbox, alert_document
from sshtrail.settings import Settings, load_settings
from sshtrail.tables import ALERTS
from tests.support.consumers import create_topics, wait_for, write_config
from tests.support.kafka import Broker
from tests.support.topicread import json_documents
from tests.support.webhook import Receiver

pytestmark = pytest.mark.integration

CONSOLE = "http://127.0.0.1:8022"


def alert_row(n: int, session_id: uuid.UUID) -> dict[str, Any]:
    return {
        "id": f"{uuid.uuid4().hex}",
        "session_id": session_id,
        "seq": n,
        "t": n * 1_000_000_000,
        "at": dt.datetime.now(dt.UTC) - dt.timedelta(seconds=30 - n),
        "rule_id": "df50313f-8a8d-4c6e-9b7c-0a4b2d4f8e11",
        "title": "Named pipe created",
        "level": "low",
        "author": "a SigmaHQ author",
        "operator": "alice",
        "target": "t1",
        "command": f"mkfifo /tmp/p{n}",
        "tags": ["attack.execution"],
        "event": {"CommandLine": f"mkfifo /tmp/p{n}"},
        "published": False,
        "delivered": False,
    }


def on_topic(servers: str, topic: str) -> list[str]:
    """The ids of every alert on ``topic``, copies included."""
    return [d["id"] for d in json_documents(servers, topic) if isinstance(d.get("id"), str)]


@pytest.fixture
def hook() -> Iterator[Receiver]:
    receiver = Receiver()
    receiver.start()
    yield receiver
    receiver.stop()


@pytest.fixture
def settings(
    tmp_path: Path, broker: Broker, topic_name: str, database_url: str, hook: Receiver
) -> Settings:
    alerts = topic_name + ".alerts"
    create_topics(broker.bootstrap_servers, alerts)
    config = write_config(tmp_path / "alert.toml", broker.bootstrap_servers, topic_name, "")
    return load_settings(
        config,
        {
            "SSHTRAIL_DATABASE__URL": database_url,
            "SSHTRAIL_ALERTS__TOPIC": alerts,
            "SSHTRAIL_ALERTS__WEBHOOK": hook.url,
            "SSHTRAIL_ALERTS__CONSOLE_URL": CONSOLE,
        },
    )


def marked(engine: Engine) -> tuple[int, int]:
    with engine.connect() as conn:
        rows = conn.execute(select(ALERTS.c.published, ALERTS.c.delivered)).all()
    return sum(p for p, _ in rows), sum(d for _, d in rows)


def test_alerts_published_by_a_member_that_died_before_marking_them_are_not_sent_again(
    settings: Settings, store_engine: Engine, broker: Broker, hook: Receiver
) -> None:
    session_id = uuid.uuid4()
    rows = [alert_row(n, session_id) for n in range(10)]
    with store_engine.begin() as conn:
        conn.execute(insert(ALERTS), rows)
    # The member before: it published the first six, the broker acknowledged them, and
    # it was killed before it could mark them.
    before = Producer({"bootstrap.servers": broker.bootstrap_servers})
    for row in rows[:6]:
        document = alert_document(row, CONSOLE)
        before.produce(settings.alerts.topic, json.dumps(document), str(session_id).encode())
    assert before.flush(15) == 0
    outbox = AlertOutbox(settings, store_engine)
    outbox.start()
    try:
        wait_for(lambda: marked(store_engine) == (10, 10), timeout=30, what="all marked")
    finally:
        outbox.stop()
    ids = on_topic(broker.bootstrap_servers, settings.alerts.topic)
    assert sorted(ids) == sorted(row["id"] for row in rows)  # each once
    # A webhook cannot be asked what it took: each POST names its alert, in the body and
    # as the key a receiver tells copies apart by.
    assert sorted(key or "" for key in hook.keys) == sorted(row["id"] for row in rows)
    assert [body["id"] for body in hook.bodies] == hook.keys


def test_a_topic_holding_what_is_not_an_alert_is_read_back_all_the_same(
    settings: Settings, store_engine: Engine, broker: Broker
) -> None:
    """Garbage on the alerts topic (not JSON, JSON that is not an alert) is skipped by
    the read-back; the alerts after it are still found and not sent twice."""
    session_id = uuid.uuid4()
    rows = [alert_row(n, session_id) for n in range(3)]
    with store_engine.begin() as conn:
        conn.execute(insert(ALERTS), rows)
    before = Producer({"bootstrap.servers": broker.bootstrap_servers})
    key = str(session_id).encode()
    for junk in (b"\xff\xfe not json", b"[1, 2]", b'{"id": 7}', b""):
        before.produce(settings.alerts.topic, junk, key)
    before.produce(settings.alerts.topic, json.dumps(alert_document(rows[0], CONSOLE)), key)
    assert before.flush(15) == 0
    outbox = AlertOutbox(settings, store_engine)
    outbox.start()
    try:
        wait_for(lambda: marked(store_engine)[0] == 3, timeout=30, what="all published")
    finally:
        outbox.stop()
    ids = on_topic(broker.bootstrap_servers, settings.alerts.topic)
    assert sorted(ids) == sorted(row["id"] for row in rows)
