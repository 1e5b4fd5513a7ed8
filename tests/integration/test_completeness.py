"""``sshtrail completeness`` against the real broker, a real store member and a real database.

The check no lag tool can make: every offset below the store group's committed
offset is stored, dead-lettered or quarantined -- and what retention deleted
before the group read it is reported as DATA-LOSS, both while the group is
still below the hole and after it moved past it.
"""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest
from sqlalchemy import Engine, delete, select

from consumer.store import CHUNKS
from tests.support.bus import KafkaBus
from tests.support.cli import sshtrail
from tests.support.consumers import group_lag, start_member, wait_for, write_config
from tests.support.kafka import Broker
from tests.support.recordings import keyed, produce, recording

pytestmark = pytest.mark.integration


def sessions(count: int) -> list[tuple[bytes | None, bytes]]:
    return [m for _ in range(count) for m in keyed(*recording(chunks=3, payload=256))]


def report(config: Path, text: bool = False) -> tuple[int, dict[int, dict[str, object]], str]:
    """Exit status, the report per partition, and (``text``) what a person reads."""
    as_json = sshtrail(config, "completeness", "--json", check=False)
    parts = {int(p["partition"]): p for p in json.loads(as_json.stdout)}
    if not text:
        return as_json.returncode, parts, ""
    done = sshtrail(config, "completeness", check=False)
    assert as_json.returncode == done.returncode, done.stderr
    return done.returncode, parts, done.stdout.decode()


def test_completeness_accounts_for_every_offset_and_reports_data_loss(
    broker: Broker,
    store_topic: str,
    store_engine: Engine,
    database_url: str,
    tmp_path: Path,
) -> None:
    servers, group = broker.bootstrap_servers, f"{store_topic}-store"
    config = write_config(tmp_path / "sshtrail.toml", servers, store_topic, database_url)
    bus = KafkaBus(servers)
    produce(servers, store_topic, [*sessions(4), (b"junk", b"not a chunk")])

    def caught_up() -> bool:
        return sum(group_lag(servers, group, store_topic).values()) == 0

    member = start_member(config)
    try:
        wait_for(caught_up, what="the store group to catch up")
        status, parts, text = report(config, text=True)
        assert status == 0, text
        assert sum(int(p["stored"]) for p in parts.values()) == 12  # type: ignore[call-overload]
        assert sum(int(p["dead_lettered"]) for p in parts.values()) == 1  # type: ignore[call-overload]
        assert text.rstrip().endswith("; complete")

        # A row the store lost (or someone deleted) is missing, with its offset.
        with store_engine.begin() as conn:
            victim = conn.execute(select(CHUNKS.c.partition, CHUNKS.c.offset).limit(1)).one()
            conn.execute(
                delete(CHUNKS).where(
                    CHUNKS.c.partition == victim.partition, CHUNKS.c.offset == victim.offset
                )
            )
        status, parts, text = report(config, text=True)
        assert status == 1
        assert parts[victim.partition]["missing"] == [victim.offset]
        assert f"MISSING 1: {victim.offset}" in text
        assert "NOT COMPLETE" in text
    finally:
        member.stop(signal.SIGTERM)

    # Retention deletes sessions the group has not read yet (no member running).
    before = bus.ends(store_topic)
    produce(servers, store_topic, sessions(6))
    deleted = bus.ends(store_topic)
    for partition, end in deleted.items():
        bus.delete_records(store_topic, partition, end)
    hit = {p for p, end in deleted.items() if end > before[p]}
    status, parts, _ = report(config)
    assert status == 1
    for partition in hit:
        assert parts[partition]["data_loss"] == [before[partition], deleted[partition]]

    # The group moves past the hole: the loss stays on record.
    produce(servers, store_topic, sessions(2))
    member = start_member(config)
    try:
        # A loss is recorded before anything past it is committed: caught up, all are.
        wait_for(caught_up, what="the store group past the hole")
    finally:
        _, _, err = member.stop(signal.SIGTERM)
    status, parts, text = report(config, text=True)
    assert status == 1
    assert {p: parts[p]["lost"] for p in hit} == {p: [[before[p], deleted[p]]] for p in hit}
    assert all(parts[p]["data_loss"] is None for p in parts)  # no longer below the hole
    assert text.count("DATA-LOSS") == len(hit)
    assert err.count("DATA-LOSS") >= len(hit)
    bus.close()
