"""How long the store group's consumption pauses when a member joins, leaves or dies.

On a three-node Apache Kafka cluster (replication 3, ``min.insync.replicas=2``)
started from the test harness's jars, under a steady load of sessions, for
each group protocol side by side:

* ``eager``: classic protocol, ``range`` (every member gives up every
  partition at each rebalance);
* ``cooperative``: classic protocol, ``cooperative-sticky`` (only moved
  partitions stop);
* ``consumer``: KIP-848, the broker assigns.

Per protocol: two ``sshtrail store`` members settle; then a third joins, one
leaves with SIGTERM, one is killed with ``kill -9`` (dropped after a 10 s
session timeout, the same for the classic members and the broker's KIP-848
setting). The figure is the longest time any partition had messages waiting
while the group committed nothing (``tests/support/rebalance.py``), from the
event until the group has settled again. The baseline, measured in the same
run, is the longest such wait in a quiet window before the events: a batch's
ordinary wait.

    python -m bench.rebalance [--rate 100] [--partitions 6] [--settle 6]
        [--protocols eager,cooperative,consumer]
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import psycopg
from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

from bench.scratch import scratch
from sshtrail import migrate
from tests.support import postgres
from tests.support.cli import Running
from tests.support.consumers import start_member, write_config
from tests.support.kafka import KafkaCluster
from tests.support.rebalance import ProgressWatch, SteadyLoad

SESSION_TIMEOUT_MS = 10_000  # the harness's group.consumer.session.timeout.ms
PROTOCOLS: dict[str, dict[str, object]] = {
    "eager": {"group_protocol": "classic", "assignment_strategy": "range"},
    "cooperative": {"group_protocol": "classic", "assignment_strategy": "cooperative-sticky"},
    "consumer": {"group_protocol": "consumer"},
}


@dataclass
class Figures:
    baseline: float
    join: float
    leave: float
    kill: float


def _split_among(admin: AdminClient, group: str, members: int, partitions: int) -> bool:
    try:
        described = admin.describe_consumer_groups([group])[group].result(10)
    except KafkaException:
        return False
    held = [
        {tp.partition for tp in member.assignment.topic_partitions} for member in described.members
    ]
    every = sorted(p for partitions_ in held for p in partitions_)
    return len(held) == members and all(held) and every == list(range(partitions))


def _until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            sys.exit(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.1)


def _database(work: Path) -> str:
    """PostgreSQL when it answers (several members write at once), else SQLite."""
    try:
        url = postgres.create_database()
    except psycopg.OperationalError:
        url = f"sqlite:///{work / f'store-{uuid.uuid4().hex[:6]}.db'}"
    migrate.upgrade(url)
    return url


def measure(
    cluster: KafkaCluster, work: Path, name: str, *, rate: float, partitions: int, settle: float
) -> Figures:
    servers = cluster.bootstrap_servers
    admin = AdminClient({"bootstrap.servers": servers, "log_level": 2})
    topic = f"bench.rebalance.{name}.{uuid.uuid4().hex[:6]}"
    futures = admin.create_topics(
        [NewTopic(t, partitions, 3) for t in (topic, topic + ".dlq")]
    ).values()
    for future in futures:
        future.result(30)
    folder = work / name
    folder.mkdir()
    config = write_config(
        folder / "sshtrail.toml",
        servers,
        topic,
        _database(work),
        None,
        session_timeout_ms=SESSION_TIMEOUT_MS,
        **PROTOCOLS[name],
    )
    group = f"{topic}-store"
    load = SteadyLoad(servers, topic, rate=rate).start()
    watch = ProgressWatch(servers, group, topic).start()
    members: list[Running] = []

    def settled(count: int, what: str) -> None:
        _until(lambda: _split_among(admin, group, count, partitions), 90, what)
        time.sleep(settle)

    try:
        members += [start_member(config, "store"), start_member(config, "store")]
        settled(2, "two members to share the partitions")
        quiet = time.monotonic()
        time.sleep(settle)
        baseline = watch.longest_pause(quiet)

        started = time.monotonic()
        members.append(start_member(config, "store"))
        settled(3, "the third member's partitions")
        join = watch.longest_pause(started)

        started = time.monotonic()
        members.pop(0).stop(signal.SIGTERM)
        settled(2, "a clean leave")
        leave = watch.longest_pause(started)

        started = time.monotonic()
        dying = members.pop(0)
        dying.process.kill()
        dying.process.wait(10)
        settled(1, "the killed member to be dropped")
        kill = watch.longest_pause(started)
    finally:
        load.stop()
        watch.stop()
        for member in members:
            if member.process.poll() is None:
                member.stop(signal.SIGTERM)
    return Figures(baseline, join, leave, kill)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=100.0, help="chunks per second")
    parser.add_argument("--partitions", type=int, default=6)
    parser.add_argument("--settle", type=float, default=6.0, help="seconds after each event")
    parser.add_argument("--protocols", default=",".join(PROTOCOLS))
    args = parser.parse_args()
    chosen = [p.strip() for p in args.protocols.split(",") if p.strip()]
    unknown = sorted(set(chosen) - set(PROTOCOLS))
    if unknown:
        sys.exit(f"unknown protocol(s) {', '.join(unknown)}; choose from {', '.join(PROTOCOLS)}")

    work = scratch("sshtrail-bench-rebalance-")
    cluster = KafkaCluster(work / "kafka", nodes=3)
    cluster.start()
    results: dict[str, Figures] = {}
    try:
        for name in chosen:
            results[name] = measure(
                cluster, work, name, rate=args.rate, partitions=args.partitions, settle=args.settle
            )
            print(f"  measured {name}", file=sys.stderr)
    finally:
        cluster.stop()

    print(
        f"store group, longest consumption pause (s) under {args.rate:.0f} chunks/s, "
        f"{args.partitions} partitions, 3 Kafka nodes, session timeout "
        f"{SESSION_TIMEOUT_MS / 1000:.0f} s; x = ratio to the baseline"
    )
    print(f"  {'protocol':<12} {'baseline':>9} {'join':>14} {'leave':>14} {'kill -9':>14}")
    for name, f in results.items():
        cells = [
            f"{value:6.2f} ({value / f.baseline:5.1f}x)" for value in (f.join, f.leave, f.kill)
        ]
        print(f"  {name:<12} {f.baseline:9.2f} " + " ".join(f"{c:>14}" for c in cells))


if __name__ == "__main__":
    main()
