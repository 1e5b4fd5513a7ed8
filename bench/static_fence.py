"""How often one broker restart fences the store's static member, and what it costs.

Issue 40: ``tests/e2e/test_faults.py`` kills its one Kafka node with ``kill -9``
and starts it again; now and then the store member, a static member
(``--instance-id``), was then fenced (``FENCED_INSTANCE_ID``) though no other
client had its id. This runs that fault in a loop outside pytest: one Kafka
node, one ``sshtrail store --instance-id fault-store`` storing what a producer
publishes as fast as it can, then ``runs`` times: broker killed, started again
``wait`` seconds later, the member watched for a session timeout plus 12 s.
A member that ended is started again at once and the time until it stores
again is its cost. Each member's stderr (librdkafka's ``debug`` log with
``--debug``) and the broker's log are kept in ``--out``.

    python -m bench.static_fence [--runs 15] [--wait 3] [--session 6000]
        [--protocol classic|consumer] [--debug cgrp,protocol] [--out DIR]

Why it happens and what was measured: docs/decisions.md ("Why one broker
restart fences our own static member"), docs/performance.md.
"""

from __future__ import annotations

import argparse
import shutil
import signal
import sys
import threading
import time
from pathlib import Path

from confluent_kafka import Producer
from sqlalchemy import Engine

from bench.scratch import scratch
from sshtrail import migrate
from sshtrail.db import make_engine
from tests.support.cli import Running
from tests.support.consumers import chunk_count, create_topics, start_member, write_config
from tests.support.kafka import KafkaCluster
from tests.support.recordings import keyed, recording

TOPIC = "fence"
INSTANCE_ID = "fault-store"


class Load:
    """Whole sessions published from a thread as fast as the producer takes them."""

    def __init__(self, servers: str) -> None:
        self._producer = Producer({"bootstrap.servers": servers, "linger.ms": 5})
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="load", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            for key, value in keyed(*recording(4, 256)):
                try:
                    self._producer.produce(TOPIC, value, key)
                except BufferError:  # the broker is down: its queue is full
                    break
            self._producer.poll(0.05)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)
        self._producer.flush(10)


def wait_until_stored(
    engine: Engine, since: int, timeout: float, member: Running | None = None
) -> float | None:
    """Seconds until the store holds more than ``since`` chunks; None if it did not,
    or if ``member`` ended first."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if member is not None and member.process.poll() is not None:
            return None
        if chunk_count(engine) > since:
            return time.monotonic() - started
        time.sleep(0.1)
    return None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--wait", type=float, default=3, help="seconds before the restart")
    parser.add_argument("--session", type=int, default=6000, help="session.timeout.ms")
    parser.add_argument("--protocol", choices=("classic", "consumer"), default="classic")
    parser.add_argument("--debug", default="", help="librdkafka's debug contexts")
    parser.add_argument("--out", type=Path, default=Path("static-fence"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    root = scratch("sshtrail-fence-")
    cluster = KafkaCluster(root / "kafka", nodes=1)
    cluster.start()
    try:
        fences, costs = loop(cluster, root, args)
    finally:
        cluster.stop()
        shutil.copy(root / "kafka" / "node1" / "server.log", args.out / "server.log")
    spent = ", ".join(f"{cost:.1f} s" for cost in costs)
    print(f"fenced {fences} of {args.runs} restarts; successor stored after: {spent or '-'}")
    return 0


def loop(cluster: KafkaCluster, root: Path, args: argparse.Namespace) -> tuple[int, list[float]]:
    """The restarts; returns how many ended the member and each successor's delay."""
    servers = cluster.bootstrap_servers
    create_topics(servers, TOPIC, TOPIC + ".dlq")
    url = f"sqlite:///{root / 'store.db'}"
    migrate.upgrade(url)
    engine = make_engine(url)
    membership: dict[str, object] = {"group_protocol": args.protocol}
    if args.protocol == "classic":
        membership["session_timeout_ms"] = args.session
        # librdkafka wants the poll interval no shorter than the session.
        membership["max_poll_interval_ms"] = max(15_000, args.session)
    config = write_config(root / "sshtrail.toml", servers, TOPIC, url, None, **membership)
    if args.debug:
        with config.open("a") as toml:
            toml.write(f'[kafka.client]\ndebug = "{args.debug}"\n')
    load = Load(servers)
    member: Running = start_member(config, "store", "--instance-id", INSTANCE_ID)
    fences, costs = 0, []
    try:
        for run in range(args.runs):
            wait_until_stored(engine, chunk_count(engine), 60)
            time.sleep(2)
            killed = time.monotonic()
            cluster.kill()
            time.sleep(args.wait)
            cluster.start_node(1, wait=True)
            up = time.monotonic() - killed
            window = args.session / 1000 + 12
            stored = wait_until_stored(engine, chunk_count(engine), window, member)
            if stored is not None:  # stored again: watched for the rest of the window
                time.sleep(max(0.0, window - stored))
            ended = member.process.poll() is not None
            line = f"run {run}: broker served again after {up:.1f} s; "
            if not ended:
                line += "stored again after " + (f"{stored:.1f} s" if stored else "(nothing)")
            else:
                fences += 1
                _, _, err = member.wait()
                (args.out / f"fenced-run{run}.stderr").write_text(err)
                member = start_member(config, "store", "--instance-id", INSTANCE_ID)
                cost = wait_until_stored(engine, chunk_count(engine), 60)
                costs.append(cost if cost is not None else float("inf"))
                last = err.strip().splitlines()[-1] if err.strip() else "(no message)"
                line += f"the member ended: {last}"
            print(line, flush=True)
    finally:
        load.stop()
        _, _, err = member.stop(signal.SIGTERM)
        (args.out / "last-member.stderr").write_text(err)
        engine.dispose()
    return fences, costs


if __name__ == "__main__":
    sys.exit(main())
