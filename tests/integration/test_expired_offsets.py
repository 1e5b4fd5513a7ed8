"""Issue 31: offsets Kafka's retention deleted before a group read them are fine for ``lag``
and ``completeness`` when the store has their sessions or their tombstones, and reported
when it has neither -- on the real broker (``delete_records`` moves the log start past the
group's committed offset), a real store member, SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import json
import signal
import uuid
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import Engine, delete, select

from consumer.deletion import Deletion, delete_session
from sshtrail.tables import CHUNKS, SESSIONS
from tests.support.bus import KafkaBus
from tests.support.cli import sshtrail
from tests.support.consumers import commit, group_lag, start_member, wait_for, write_config
from tests.support.kafka import Broker
from tests.support.recordings import keyed, produce, recording

pytestmark = pytest.mark.integration

GROUP = "reads-later"


def lag(config: Path) -> tuple[int, dict[int, dict[str, Any]]]:
    done = sshtrail(config, "lag", "--group", GROUP, "--json", check=False)
    [group] = json.loads(done.stdout)["groups"]
    return done.returncode, {row["partition"]: row for row in group["partitions"]}


def completeness(config: Path) -> tuple[int, dict[int, dict[str, Any]], str]:
    as_json = sshtrail(config, "completeness", "--group", GROUP, "--json", check=False)
    text = sshtrail(config, "completeness", "--group", GROUP, check=False).stdout.decode()
    parts = {int(p["partition"]): p for p in json.loads(as_json.stdout)}
    return as_json.returncode, parts, text


def partition_of(engine: Engine, session_id: uuid.UUID) -> int:
    with engine.connect() as conn:
        query = select(CHUNKS.c.partition).where(CHUNKS.c.session_id == session_id).limit(1)
        found: int = conn.execute(query).scalar_one()
        return found


def test_expired_offsets_are_fine_when_stored_or_tombstoned_and_reported_when_not(
    broker: Broker, store_topic: str, store_engine: Engine, database_url: str, tmp_path: Path
) -> None:
    servers = broker.bootstrap_servers
    config = write_config(tmp_path / "sshtrail.toml", servers, store_topic, database_url)
    recorded = [recording(chunks=3, payload=64) for _ in range(6)]
    produce(servers, store_topic, [m for sid, messages in recorded for m in keyed(sid, messages)])
    store_group = f"{store_topic}-store"
    member = start_member(config)
    try:
        wait_for(
            lambda: sum(group_lag(servers, store_group, store_topic).values()) == 0,
            what="the store group to catch up",
        )
    finally:
        member.stop(signal.SIGTERM)

    # Another group that read nothing, and Kafka's retention takes every message.
    bus = KafkaBus(servers)
    ends = bus.ends(store_topic)
    commit(servers, GROUP, store_topic, dict.fromkeys(ends, 0))
    for partition, end in ends.items():
        bus.delete_records(store_topic, partition, end)
    bus.close()
    used = {p for p, end in ends.items() if end}

    status, rows = lag(config)
    assert status == 0, rows
    for p in used:
        assert rows[p]["status"] == "OK"
        assert "expired from Kafka, stored" in rows[p]["reason"]
    status, parts, text = completeness(config)
    assert status == 0, text
    assert all(parts[p]["data_loss"] is None for p in parts)
    assert text.count("expired from Kafka, stored") == len(used)

    # A session deleted by hand: its tombstone accounts for its offsets.
    deleted, _ = recorded[0]
    hit = partition_of(store_engine, deleted)
    with store_engine.begin() as conn:
        delete_session(
            conn,
            deleted,
            Deletion(
                rule=None,
                by="admin",
                reason="a GDPR request",
                signer=Ed25519PrivateKey.generate(),
                at=dt.datetime.now(dt.UTC),
            ),
        )
    status, rows = lag(config)
    assert status == 0, rows
    assert "3 of deleted sessions" in rows[hit]["reason"]
    status, parts, text = completeness(config)
    assert status == 0, text

    # A session the store does not have and no tombstone for: lost, in both.
    gone, _ = recorded[1]
    hit = partition_of(store_engine, gone)
    with store_engine.begin() as conn:
        conn.execute(delete(CHUNKS).where(CHUNKS.c.session_id == gone))
        conn.execute(delete(SESSIONS).where(SESSIONS.c.id == gone))
    status, rows = lag(config)
    assert status == 2
    assert rows[hit]["status"] == "DATA-LOSS"
    assert "expired from Kafka, lost: 3 of" in rows[hit]["reason"]
    assert all(rows[p]["status"] == "OK" for p in used - {hit})
    status, parts, text = completeness(config)
    assert status == 1
    assert parts[hit]["data_loss"] == [0, ends[hit]]
    assert "lost: 3 of" in text
    assert all(parts[p]["data_loss"] is None for p in parts if p != hit)
