"""The ``sshtrail store`` group against the real broker and real databases."""

from __future__ import annotations

import os
import signal
import urllib.request
from pathlib import Path

import pytest
from sqlalchemy import Engine, select

from consumer.deadletter import HEADER_ERROR, HEADER_OFFSET, HEADER_PARTITION, HEADER_TOPIC
from consumer.store import SESSIONS
from sshtrail.broker import free_port
from tests.support.consumers import (
    chunk_count,
    group_lag,
    read_all,
    start_member,
    wait_for,
    write_config,
)
from tests.support.kafka import Broker
from tests.support.recordings import keyed, produce, recording

pytestmark = pytest.mark.integration


def test_sessions_are_stored_and_garbage_is_dead_lettered(
    broker: Broker,
    store_topic: str,
    store_engine: Engine,
    database_url: str,
    tmp_path: Path,
) -> None:
    servers = broker.bootstrap_servers
    sessions = [recording(chunks=4) for _ in range(20)]
    garbage = [
        (b"junk", os.urandom(100)),
        (None, b"ST\x09\x00rest"),
        (b"wrong-key", sessions[0][1][1]),
    ]
    produce(servers, store_topic, [m for sid, ms in sessions[:10] for m in keyed(sid, ms)])
    produce(servers, store_topic, garbage)
    produce(servers, store_topic, [m for sid, ms in sessions[10:] for m in keyed(sid, ms)])
    port = free_port()
    config = write_config(tmp_path / "sshtrail.toml", servers, store_topic, database_url)
    member = start_member(config, "store", "--metrics-port", str(port))
    try:
        wait_for(lambda: chunk_count(store_engine) == 80, what="80 chunks stored")
        wait_for(
            lambda: sum(group_lag(servers, f"{store_topic}-store", store_topic).values()) == 0,
            what="the group to commit everything",
        )
        metrics = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read()
    finally:
        status, out, err = member.stop(signal.SIGTERM)
    assert status == 0, err
    assert "80 chunks written, 3 dead-lettered" in out
    text = metrics.decode()
    group = f'group="{store_topic}-store"'
    assert f"sshtrail_messages_dead_lettered_total{{{group}}} 3.0" in text
    assert f"sshtrail_chunks_written_total{{{group}}} 80.0" in text
    assert f"sshtrail_consumer_lag_messages{{{group}," in text
    with store_engine.connect() as conn:
        statuses = conn.execute(select(SESSIONS.c.status, SESSIONS.c.verified)).all()
    assert sorted(set(statuses)) == [("closed", True)]
    assert len(statuses) == 20

    letters = read_all(servers, store_topic + ".dlq")
    assert len(letters) == 3
    origins = {}
    for _p, _o, message in letters:
        headers = dict(message.headers())  # type: ignore[attr-defined]
        assert headers[HEADER_TOPIC] == store_topic.encode()
        origins[int(headers[HEADER_OFFSET]), int(headers[HEADER_PARTITION])] = (
            message.key(),  # type: ignore[attr-defined]
            message.value(),  # type: ignore[attr-defined]
            headers[HEADER_ERROR].decode(),
        )
    by_value = {value: (key, error) for key, value, error in origins.values()}
    assert by_value[garbage[0][1]][1].startswith("bad magic")
    assert "unsupported wire format version 9" in by_value[garbage[1][1]][1]
    assert by_value[garbage[2][1]] == (b"wrong-key", by_value[garbage[2][1]][1])
    assert "is not the chunk's session id" in by_value[garbage[2][1]][1]
