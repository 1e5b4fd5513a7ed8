"""The index group's rate next to the raw consume rate, and substring query latency at scale.

Part 1, indexing: publish ``--sessions`` typed shell sessions to the embedded
broker, read them with a bare consumer (the baseline), then with one
``GroupRunner`` + ``IndexWriter`` per backend; report chunks/s and output
lines/s, and the ratio to raw consume.

Part 2, queries: fill each backend's index with ``--lines`` synthetic lines
(log lines, commands, paths, addresses; the selective needles appear 10
times each), then time ``--queries`` searches per needle: p50 and p95.
Goal from the index issue: p95 < 10 ms for a selective term over at least
1,000,000 lines on both backends.

    python -m bench.index [--sessions 300] [--lines 1000000] [--queries 100]
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
import statistics
import time
import uuid

import msgspec
from sqlalchemy import Engine, func, select

from bench.scratch import scratch
from bench.store import member_seconds, raw_consume, settings_for
from consumer.indexer import IndexWriter
from sshtrail import search
from sshtrail.broker import EmbeddedBroker, free_port
from sshtrail.db import make_engine
from sshtrail.kafka.admin import ensure_topics
from tests.support import postgres
from tests.support.recordings import keyed, produce, typed_session

SELECTIVE = ["rm -rf", "10.0.3.7", "/etc/shadow", "DROP TABLE"]
COMMON = "error"
WORDS = [
    "error",
    "warning",
    "info",
    "connection",
    "timeout",
    "request",
    "user",
    "service",
    "disk",
    "memory",
    "started",
    "stopped",
    "failed",
    "retry",
    "cache",
    "queue",
    "worker",
    "backend",
]


def shell_work(rng: random.Random) -> list[tuple[str, str]]:
    """Forty commands, each with a few lines of output."""
    work = []
    for n in range(40):
        lines = [
            f"{rng.choice(WORDS)} {rng.choice(WORDS)} id={rng.randrange(10**6)} "
            f"host=10.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(256)}"
            for _ in range(rng.randrange(1, 8))
        ]
        work.append((f"grep -n {rng.choice(WORDS)} /var/log/app{n}.log", "\n".join(lines)))
    return work


def output_lines(engine: Engine) -> int:
    with engine.connect() as conn:
        query = select(func.count()).where(search.DOCS.c.kind == "output")
        return int(conn.execute(query).scalar_one())


def fill(engine: Engine, lines: int, rng: random.Random) -> None:
    """``lines`` synthetic documents; each selective needle is in exactly 10 of them."""
    needles = {rng.randrange(lines): needle for needle in SELECTIVE for _ in range(10)}
    session = uuid.uuid4()
    start = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
    batch: list[dict[str, object]] = []
    with engine.begin() as conn:
        for n in range(lines):
            text = (
                f"{rng.choice(WORDS)} {rng.choice(WORDS)} /srv/app/{rng.choice(WORDS)}"
                f"/{rng.randrange(10**6)} host=172.16.{rng.randrange(256)}."
                f"{rng.randrange(256)} {rng.choice(WORDS)}"
            )
            if n in needles:
                text += f" {needles[n]}"
            if n % 5000 == 0:
                session = uuid.uuid4()
            batch.append(
                {
                    "session_id": session,
                    "kind": "output",
                    "ordinal": n,
                    "seq": n,
                    "t": n * 1000,
                    "at": start + dt.timedelta(seconds=n),
                    "operator": rng.choice(["alice", "bob", "carol"]),
                    "target": "web01",
                    "text": text,
                }
            )
            if len(batch) == 10_000:
                conn.execute(search.DOCS.insert(), batch)
                batch = []
        if batch:
            conn.execute(search.DOCS.insert(), batch)
        if engine.dialect.name == "postgresql":
            conn.exec_driver_sql("ANALYZE search_docs")


def latencies(engine: Engine, needle: str, queries: int) -> tuple[float, float, int]:
    """p50 and p95 in ms of ``queries`` searches (first 100 hits), and the hit count."""
    times = []
    hits = 0
    with engine.connect() as conn:
        for _ in range(queries):
            started = time.perf_counter()
            hits = len(search.search(conn, search.Query(needle, limit=100)))
            times.append((time.perf_counter() - started) * 1000)
    quantiles = statistics.quantiles(times, n=20)
    return statistics.median(times), quantiles[18], hits


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=300)
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--skip-postgres", action="store_true")
    args = parser.parse_args()
    rng = random.Random(7)
    workdir = scratch("bench-index-")
    backends = [("SQLite FTS5", f"sqlite:///{workdir / 'search.db'}")]
    if not args.skip_postgres:
        backends.append(("PostgreSQL pg_trgm", postgres.create_database()))

    with (workdir / "broker.log").open("ab") as log:
        broker = EmbeddedBroker("127.0.0.1", free_port(), workdir / "broker", log)
        broker.start()
        try:
            settings = settings_for(broker.bootstrap_servers, "bench.sessions", 2000)
            settings = msgspec.structs.replace(
                settings, kafka=msgspec.structs.replace(settings.kafka, partitions=6)
            )
            ensure_topics(settings)
            sessions = [
                typed_session(shell_work(rng), events_per_chunk=16) for _ in range(args.sessions)
            ]
            messages = [m for session in sessions for m in keyed(*session)]
            total = produce(broker.bootstrap_servers, settings.kafka.topic, messages)
            print(f"part 1: {total:,} chunks of {args.sessions} typed shell sessions")
            raw = raw_consume(settings, total)
            print(f"  baseline raw consume        {total / raw:>10,.0f} chunks/s")
            for name, url in backends:
                engine = make_engine(url)
                search.ensure_schema(engine)
                seconds = member_seconds(settings, IndexWriter(engine), total).seconds
                lines = output_lines(engine)
                print(
                    f"  index into {name:<18} {total / seconds:>10,.0f} chunks/s "
                    f"{lines / seconds:>10,.0f} output lines/s  ratio to raw consume "
                    f"{raw / seconds:.2f}"
                )
                search.drop_schema(engine)
                engine.dispose()
        finally:
            broker.stop()

    print(f"part 2: {args.lines:,} lines per backend, {args.queries} queries per term")
    for name, url in backends:
        engine = make_engine(url)
        search.ensure_schema(engine)
        started = time.perf_counter()
        fill(engine, args.lines, rng)
        print(f"  {name}: filled in {time.perf_counter() - started:.0f} s")
        for needle in [*SELECTIVE, COMMON]:
            p50, p95, hits = latencies(engine, needle, args.queries)
            print(f"    {needle!r:<14} p50 {p50:7.2f} ms  p95 {p95:7.2f} ms  ({hits} hits shown)")
        engine.dispose()
        if url.startswith("postgres"):
            postgres.drop_database(url)


if __name__ == "__main__":
    main()
