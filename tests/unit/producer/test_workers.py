"""The parts of a gateway of several workers that hold no socket: the shared session
counts, the summed metrics, and ``gateway.workers`` read from the settings."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from producer.metricsum import combine
from producer.service import WorkerPlace
from producer.sharedcounts import SharedCounts
from producer.workers import worker_count
from sshtrail.errors import ConfigError
from sshtrail.settings import load_settings


def test_session_counts_are_summed_over_workers_and_a_dead_workers_row_is_forgotten() -> None:
    cells = SharedCounts.create(["alice", "bob"], 2)
    first = SharedCounts(cells, ["alice", "bob"], 2, 0)
    second = SharedCounts(cells, ["alice", "bob"], 2, 1)
    first.add("alice", 1)
    second.add("alice", 1)
    second.add("bob", 1)
    assert (first.of("alice"), second.of("alice"), first.of("bob")) == (2, 2, 1)
    assert first.total() == second.total() == 3
    first.add("alice", -1)
    assert second.of("alice") == 1
    first.zero(1)  # worker 1 died: its sessions ended with it
    assert (first.of("alice"), first.of("bob"), first.total()) == (0, 0, 0)


def test_an_operator_not_in_the_settings_is_counted_by_its_worker_only() -> None:
    cells = SharedCounts.create(["alice"], 2)
    counts = SharedCounts(cells, ["alice"], 2, 0)
    counts.add("mallory", 1)
    assert counts.of("mallory") is None
    assert counts.total() == 1


def test_live_sessions_admit_against_every_workers_count() -> None:
    from producer.admission import Admission
    from producer.sessions import LiveSessions

    settings = load_settings(environ={"SSHTRAIL_GATEWAY__MAX_SESSIONS_PER_OPERATOR": "2"})
    cells = SharedCounts.create(["alice"], 2)
    SharedCounts(cells, ["alice"], 2, 1).add("alice", 2)  # alice's two, on the other worker
    here = LiveSessions(SharedCounts(cells, ["alice"], 2, 0))
    refusal = Admission(settings.gateway).channel(
        "alice", here.gateway_total(), here.count_of("alice")
    )
    assert refusal is not None
    assert refusal.kind == "max_sessions_per_operator"


def test_worker_metrics_are_summed_but_reachability_and_age_are_not() -> None:
    one = (
        "# TYPE sshtrail_gateway_sessions gauge\nsshtrail_gateway_sessions 3\n"
        "# TYPE sshtrail_gateway_refusals_total counter\n"
        'sshtrail_gateway_refusals_total{reason="max_sessions"} 1\n'
        "# TYPE sshtrail_gateway_kafka_reachable gauge\nsshtrail_gateway_kafka_reachable 1\n"
        "# TYPE sshtrail_gateway_spool_oldest_pending_seconds gauge\n"
        "sshtrail_gateway_spool_oldest_pending_seconds 0.5\n"
    )
    two = one.replace("sessions 3", "sessions 4").replace("reachable 1", "reachable 0")
    two = two.replace("seconds 0.5", "seconds 7").replace("} 1", "} 2")
    families = {f.name: f for f in combine([one, two])}
    value = {f.name: f.samples[0].value for f in families.values()}
    assert value == {
        "sshtrail_gateway_sessions": 7,
        "sshtrail_gateway_refusals": 3,
        "sshtrail_gateway_kafka_reachable": 0,
        "sshtrail_gateway_spool_oldest_pending_seconds": 7,
    }
    assert families["sshtrail_gateway_refusals"].samples[0].labels == {"reason": "max_sessions"}


def test_one_worker_by_default_and_zero_asks_for_the_cores_the_gateway_may_use() -> None:
    """One by default: two start 0.6-0.8 s later here (docs/performance.md)."""
    settings = load_settings(environ={})
    assert settings.gateway.workers == 1
    assert worker_count(settings.gateway) == 1
    cores = load_settings(environ={"SSHTRAIL_GATEWAY__WORKERS": "0"})
    assert worker_count(cores.gateway) == len(os.sched_getaffinity(0))


@pytest.mark.parametrize("value", ["-1", "257", "two"])
def test_a_bad_worker_count_is_refused_and_named(value: str) -> None:
    with pytest.raises(ConfigError, match=r"gateway\.workers"):
        load_settings(environ={"SSHTRAIL_GATEWAY__WORKERS": value})


def test_worker_0_keeps_the_single_process_spool_and_the_others_have_their_own() -> None:
    from pathlib import Path

    base = Path("/state/spool")
    assert WorkerPlace(0, 2, None).spool_dir(base) == base
    assert WorkerPlace(1, 2, None).spool_dir(base) == base / "worker-1"
    assert WorkerPlace(1, 2, None).state_name("control/locks.json") == (
        "control/locks.json.worker-1"
    )


def test_the_loop_watch_sees_a_stall_and_a_full_collection() -> None:
    import asyncio
    import gc
    import time

    from producer.loopwatch import LoopWatch

    async def stalled() -> LoopWatch:
        watch = LoopWatch()
        watch.start()
        await asyncio.sleep(0.05)
        time.sleep(0.06)  # a callback holding the loop for 60 ms
        gc.collect(2)
        await asyncio.sleep(0.05)
        watch.stop()
        return watch

    watch = asyncio.run(stalled())
    assert watch.longest_stall() >= 0.05
    assert watch.over[0.05] >= 1
    assert watch.gc_count[2] >= 1
    assert "longest stalls" in watch.summary()
    watch.reset()
    assert (watch.longest_stall(), watch.gc_count) == (0.0, [0, 0, 0])


def test_spools_of_workers_no_longer_started_are_found(tmp_path: Path) -> None:
    from producer.workers import unstarted_spools

    for index in (1, 2, 3):
        (tmp_path / f"worker-{index}").mkdir()
    (tmp_path / "worker-2" / "segment-00000000000000000000.log").write_bytes(b"x")
    (tmp_path / "worker-3" / "acked").write_bytes(b"x")  # no segment: nothing to publish
    (tmp_path / "worker-x").mkdir()
    assert unstarted_spools(tmp_path, 2) == [tmp_path / "worker-2"]
    assert unstarted_spools(tmp_path, 3) == []
