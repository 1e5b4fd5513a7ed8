"""The store group under faults: killed members, a second member, a database outage."""

from __future__ import annotations

import json
import re
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

from sshtrail import migrate
from sshtrail.broker import free_port
from sshtrail.db import make_engine
from tests.support.cli import Running, sshtrail
from tests.support.consumers import (
    assert_store_equals_topic,
    chunk_count,
    committed_offsets,
    group_lag,
    start_member,
    wait_for,
    write_config,
)
from tests.support.kafka import Broker
from tests.support.metrics import Samples, scrape
from tests.support.pgcluster import PrivateCluster, find_bin
from tests.support.recordings import keyed, produce, recording
from tests.support.services import unavailable

pytestmark = pytest.mark.integration


def load(count: int, chunks: int, payload: int = 1024) -> list[tuple[bytes | None, bytes]]:
    return [m for _ in range(count) for m in keyed(*recording(chunks, payload))]


def test_kill_9_mid_batch_then_restart_stores_every_chunk_once(
    broker: Broker,
    store_topic: str,
    store_engine: Engine,
    database_url: str,
    tmp_path: Path,
) -> None:
    servers = broker.bootstrap_servers
    total = produce(servers, store_topic, load(300, 20))
    config = write_config(
        tmp_path / "sshtrail.toml", servers, store_topic, database_url, batch_size=500
    )
    # A static member id, as `sshtrail up` and compose use: the embedded broker
    # never drops a killed dynamic member (docs/decisions.md), Kafka would
    # after session.timeout.ms; with the id the restart takes over at once.
    member = start_member(config, "store", "--instance-id", "store-1")
    wait_for(lambda: chunk_count(store_engine) > 0, what="the first batch")
    member.process.kill()
    member.process.wait(10)
    assert 0 < chunk_count(store_engine) < total, "the kill came too late to test anything"
    member = start_member(config, "store", "--instance-id", "store-1")
    try:
        wait_for(lambda: chunk_count(store_engine) == total, timeout=120, what="every chunk")
        wait_for(lambda: sum(group_lag(servers, f"{store_topic}-store", store_topic).values()) == 0)
    finally:
        status, _, err = member.stop(signal.SIGTERM)
    assert status == 0, err
    assert_store_equals_topic(store_engine, servers, store_topic)


def test_two_members_split_the_partitions_and_one_takes_over(
    broker: Broker, store_topic: str, sqlite_url: str, tmp_path: Path
) -> None:
    migrate.upgrade(sqlite_url)
    store_engine = make_engine(sqlite_url)
    servers = broker.bootstrap_servers
    config = write_config(tmp_path / "sshtrail.toml", servers, store_topic, sqlite_url)
    first = start_member(config)
    wait_for(lambda: "holds [0, 1, 2]" in first.stderr, what="first assignment")
    second = start_member(config)
    try:
        wait_for(
            lambda: "assigned partitions [" in second.stderr and "revoked" in first.stderr,
            what="the split",
        )
        total = produce(servers, store_topic, load(60, 5, 200))
        wait_for(lambda: chunk_count(store_engine) == total, what="the first load")
        first_status, first_out, first_err = first.stop(signal.SIGTERM)
        assert first_status == 0, first_err
        wait_for(
            lambda: second.stderr.count("holds [0, 1, 2]") == 1,
            what="the second member to take every partition",
        )
        total += produce(servers, store_topic, load(60, 5, 200))
        wait_for(lambda: chunk_count(store_engine) == total, what="the second load")
    finally:
        if first.process.poll() is None:
            first.stop(signal.SIGTERM)
        status, second_out, err = second.stop(signal.SIGTERM)
    assert status == 0, err
    # Both wrote: the work was shared, not done twice, and nothing is missing.
    written = [
        int(re.search(r"(\d+) chunks written", out)[1])  # type: ignore[index]
        for out in (first_out, second_out)
    ]
    assert min(written) > 0
    assert sum(written) == total
    assert_store_equals_topic(store_engine, servers, store_topic)
    store_engine.dispose()


@pytest.fixture
def private_postgres() -> Iterator[PrivateCluster]:
    bindir = find_bin()
    if bindir is None:
        unavailable("PostgreSQL server binaries are not installed (apt-get install postgresql)")
    cluster = PrivateCluster(bindir)
    cluster.start()
    yield cluster
    cluster.remove()


def test_a_postgresql_outage_stalls_the_group_and_loses_nothing(
    broker: Broker, store_topic: str, private_postgres: PrivateCluster, tmp_path: Path
) -> None:
    servers, url = broker.bootstrap_servers, private_postgres.url
    migrate.upgrade(url)
    store_engine = make_engine(url)
    config = write_config(tmp_path / "sshtrail.toml", servers, store_topic, url)
    metrics_port = free_port()
    member = start_member(config, "store", "--metrics-port", str(metrics_port))
    produced = [0]
    stop = threading.Event()

    def steady_load() -> None:  # one small session every 50 ms, for 45 s at most
        deadline = time.monotonic() + 45
        while not stop.is_set() and time.monotonic() < deadline:
            produced[0] += produce(servers, store_topic, load(1, 4, 512))
            time.sleep(0.05)

    loader = threading.Thread(target=steady_load)
    loader.start()
    try:
        wait_for(lambda: chunk_count(store_engine) > 20, what="writes before the outage")
        store_engine.dispose()
        private_postgres.stop()
        # The outage lasts until the member has retried at its longest back-off a few
        # times while the load goes on (1 s here: write_config's retry_max_ms).
        wait_for(
            lambda: member.stderr.count("write failed, retrying in 1.0s") >= 3,
            timeout=60,
            what="the member retrying at its longest back-off",
        )
        stalled = member.stderr.count("write failed, retrying")
        # Every partition behind before the window opens: one the load had not reached
        # yet would start the window at lag 0 and be judged WARN (lag growing), not
        # STALL -- on a busy machine the load thread can be slow to reach all three.
        wait_for(
            lambda: all(
                lag > 0 for lag in group_lag(servers, f"{store_topic}-store", store_topic).values()
            ),
            timeout=30,
            what="lag on every partition",
        )
        # Issue 16: the member's own gauges keep moving while it retries, and the
        # broker's side judges the group STALL (owned, lag, nothing committed).
        before = _lag_messages(scrape(metrics_port))
        judged = sshtrail(
            config,
            "lag",
            "--group",
            f"{store_topic}-store",
            "--window",
            "6",
            "--json",
            check=False,
        )
        assert judged.returncode == 2, judged.stderr
        rows = json.loads(judged.stdout)["groups"][0]["partitions"]
        assert {r["status"] for r in rows if r["lag"]} == {"STALL"}, rows
        assert _lag_messages(scrape(metrics_port)) > before
        private_postgres.start()
        stop.set()
        loader.join(60)
        wait_for(lambda: chunk_count(store_engine) == produced[0], timeout=90, what="every chunk")
    finally:
        stop.set()
        status, _, err = member.stop(signal.SIGTERM)
    assert stalled >= 3, err  # it retried with back-off while the database was away
    assert status == 0, err
    assert_store_equals_topic(store_engine, servers, store_topic)
    store_engine.dispose()


def _lag_messages(samples: Samples) -> float:
    return sum(v for (name, _), v in samples.items() if name == "sshtrail_consumer_lag_messages")


def test_a_rebalance_during_a_database_outage_commits_nothing_before_it_is_stored(
    broker: Broker, store_topic: str, private_postgres: PrivateCluster, tmp_path: Path
) -> None:
    """Issue 14, defect 2, with real members: while PostgreSQL is away, a member leaves and
    the other is given its partitions, in the middle of its retries. Nothing can be stored
    then, so no committed offset may move; once the database is back, every chunk is
    stored once and the group catches up."""
    servers, url = broker.bootstrap_servers, private_postgres.url
    migrate.upgrade(url)
    store_engine = make_engine(url)
    config = write_config(tmp_path / "sshtrail.toml", servers, store_topic, url, batch_size=50)
    group = f"{store_topic}-store"
    # Dynamic members: one that stops sends LeaveGroup (a static one would not), and
    # the partitions move at once.
    first = start_member(config, "store")
    joining = start_member(config, "store")
    second: Running | None = joining
    try:
        wait_for(lambda: "assigned partitions" in joining.stderr, what="both members assigned")
        before = produce(servers, store_topic, load(20, 4, 256))
        wait_for(lambda: chunk_count(store_engine) == before, what="the first load stored")
        wait_for(lambda: sum(group_lag(servers, group, store_topic).values()) == 0)
        store_engine.dispose()
        private_postgres.stop()
        total = before + produce(servers, store_topic, load(40, 4, 256))
        wait_for(lambda: "write failed, retrying" in first.stderr, what="the outage noticed")
        committed = committed_offsets(servers, group, store_topic)
        assigned = first.stderr.count("assigned partitions")
        joining.stop(signal.SIGTERM)  # leaves: its partitions move to the first, mid-retry
        second = None
        moved: list[dict[int, int]] = []

        def everything_back() -> bool:
            now = committed_offsets(servers, group, store_topic)
            if now != committed:
                moved.append(now)
            return first.stderr.count("assigned partitions") > assigned

        wait_for(everything_back, what="the first member given the partitions")
        wait_for(lambda: first.stderr.count("write failed, retrying") >= 3, what="more retries")
        everything_back()
        assert moved == [], "offsets were committed while nothing could be stored"
        private_postgres.start()
        wait_for(lambda: chunk_count(store_engine) == total, timeout=120, what="every chunk")
        wait_for(lambda: sum(group_lag(servers, group, store_topic).values()) == 0)
    finally:
        if second is not None:
            second.stop(signal.SIGTERM)
        first.stop(signal.SIGTERM)
    assert_store_equals_topic(store_engine, servers, store_topic)
    store_engine.dispose()


def test_a_member_started_before_its_database_waits_for_it(
    broker: Broker, store_topic: str, private_postgres: PrivateCluster, tmp_path: Path
) -> None:
    """Started while PostgreSQL is down (a host booting, compose ordering), a member waits
    for it instead of dying -- and a SIGTERM while it waits stops it cleanly."""
    servers, url = broker.bootstrap_servers, private_postgres.url
    migrate.upgrade(url)
    private_postgres.stop()
    config = write_config(tmp_path / "sshtrail.toml", servers, store_topic, url)
    given_up = Running("--config", str(config), "store", cwd=tmp_path)
    wait_for(lambda: "is not ready, waiting" in given_up.stderr, what="the member waiting")
    status, out, err = given_up.stop(signal.SIGTERM)
    assert status == 0, err
    assert "stopped while waiting for the store" in out
    member = Running("--config", str(config), "store", cwd=tmp_path)
    try:
        wait_for(lambda: "is not ready, waiting" in member.stderr, what="the member waiting")
        produced = produce(servers, store_topic, load(5, 3, 256))
        private_postgres.start()
        member.expect("store: group")
        store_engine = make_engine(url)
        wait_for(lambda: chunk_count(store_engine) == produced, what="the chunks stored")
    finally:
        status, _, err = member.stop(signal.SIGTERM)
    assert status == 0, err
    store_engine.dispose()
