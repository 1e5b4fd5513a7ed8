"""Gateway → Kafka → store, with the real OpenSSH client and server at the ends."""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

import pytest
from sqlalchemy import Engine, select

from consumer.store import CHUNKS, SESSIONS
from sshtrail.chain import Status, verify_chain
from tests.support.consumers import start_member, wait_for, write_config
from tests.support.gateway import GatewayProcess, published

pytestmark = pytest.mark.e2e


def test_a_session_through_the_gateway_is_stored_closed_with_its_exit_status(
    gateway: GatewayProcess, store_engine: Engine, database_url: str, tmp_path: Path
) -> None:
    run = subprocess.run(
        gateway.ssh("alice:t1", "echo stored; exit 3"), capture_output=True, timeout=30, check=False
    )
    assert (run.returncode, run.stdout) == (3, b"stored\n")
    config = write_config(tmp_path / "store.toml", gateway.servers, gateway.topic, database_url)
    member = start_member(config)

    def closed() -> bool:
        with store_engine.connect() as conn:
            return conn.execute(select(SESSIONS.c.status)).scalars().all() == ["closed"]

    try:
        wait_for(closed, what="the session to be stored closed")
    finally:
        status, _, err = member.stop(signal.SIGTERM)
    assert status == 0, err
    [(session_id, entries)] = published(gateway.servers, gateway.topic).items()
    with store_engine.connect() as conn:
        row = conn.execute(select(SESSIONS)).mappings().one()
        stored = conn.execute(
            select(CHUNKS.c.seq, CHUNKS.c.data, CHUNKS.c.partition, CHUNKS.c.offset).order_by(
                CHUNKS.c.seq
            )
        ).all()
    assert str(row["id"]) == session_id
    assert (row["operator"], row["target"], row["exit_status"]) == ("alice", "t1", 3)
    assert (row["end_reason"], row["verified"], row["gaps"]) == ("exit status 3", True, [])
    assert row["chunk_count"] == len(entries) == len(stored)
    assert [(seq, data, p, o) for seq, data, p, o in stored] == sorted(
        (chunk.seq, chunk.raw, p, o) for p, o, chunk in entries
    )
    verdict = verify_chain([(seq, data) for seq, data, _, _ in stored], {gateway.signing_key})
    assert verdict.status is Status.OK
