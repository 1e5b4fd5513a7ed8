"""How fast ``sshtrail sessions`` and ``sshtrail search`` answer over 10,000 stored sessions.

Fills a fresh SQLite store with ``--sessions`` closed sessions (through the
store's writer) and a search index with ``--lines`` lines spread over them,
then times each command two ways: the query alone, in process, and the whole
command as an auditor runs it (a new Python process). The baseline is
``sshtrail --version`` in the same run: what starting the CLI costs before
any query. Goal from the auditor issue: < 200 ms with 10,000 sessions.

    python -m bench.audit [--sessions 10000] [--lines 200000] [--runs 20]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import random
import statistics
import subprocess
import sys
import time
from collections.abc import Callable

from sqlalchemy import Engine

from bench.index import fill
from bench.scratch import scratch
from consumer.messages import Received
from consumer.store import StoreWriter
from sshtrail import migrate, queries, search
from sshtrail.db import make_engine
from sshtrail.wire import decode_chunk
from tests.support.recordings import recording


def timed(work: Callable[[], object], runs: int) -> tuple[float, float]:
    """p50 and p95 of ``runs`` calls, in ms."""
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        work()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times), statistics.quantiles(times, n=20)[18]


def fill_databases(
    store_url: str, search_url: str, sessions: int, lines: int
) -> tuple[Engine, Engine]:
    """A store at the latest schema with ``sessions`` closed sessions (written by the
    store's writer) and a search index with ``lines`` lines spread over them."""
    migrate.upgrade(store_url)
    store = make_engine(store_url)
    writer = StoreWriter(store, dt.timedelta(hours=1))
    operators = ["alice", "bob", "carol", "dave"]
    batch: list[Received] = []
    now = dt.datetime.now(dt.UTC)
    for n in range(sessions):
        _, messages = recording(3, 200, operator=operators[n % 4], target=f"web{n % 20:02d}")
        batch += [Received(decode_chunk(m), 0, n * 3 + i, now) for i, m in enumerate(messages)]
        if len(batch) >= 3000:
            writer.write(batch)
            batch = []
    writer.write(batch)
    index = make_engine(search_url)
    search.ensure_schema(index)
    fill(index, lines, random.Random(3))
    return store, index


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=10_000)
    parser.add_argument("--lines", type=int, default=200_000)
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    workdir = scratch("bench-audit-")
    store_url, search_url = f"sqlite:///{workdir / 'store.db'}", f"sqlite:///{workdir / 's.db'}"
    store, index = fill_databases(store_url, search_url, args.sessions, args.lines)
    print(f"{args.sessions:,} sessions stored, {args.lines:,} lines indexed")

    env = {**os.environ, "SSHTRAIL_DATABASE__URL": store_url, "SSHTRAIL_SEARCH__URL": search_url}

    def command(*argv: str) -> Callable[[], object]:
        return lambda: subprocess.run(
            [sys.executable, "-m", "sshtrail", *argv], env=env, capture_output=True, check=True
        )

    def list_query() -> object:
        with store.connect() as conn:
            rows = queries.list_sessions(conn, queries.SessionFilter(operator="bob"))
            return queries.short_ids(conn, [row["id"] for row in rows])

    def search_query() -> object:
        with index.connect() as conn:
            return search.search(conn, search.Query("rm -rf"))

    base = timed(command("--version"), args.runs)
    print(f"baseline: sshtrail --version              p50 {base[0]:6.1f} ms  p95 {base[1]:6.1f} ms")
    for name, work in (
        ("sessions --operator bob, query only", list_query),
        ("sessions --operator bob, whole command", command("sessions", "--operator", "bob")),
        ("search 'rm -rf', query only", search_query),
        ("search 'rm -rf', whole command", command("search", "rm -rf")),
    ):
        p50, p95 = timed(work, args.runs)
        print(
            f"{name:<40} p50 {p50:6.1f} ms  p95 {p95:6.1f} ms  "
            f"(p50 minus startup {p50 - base[0]:6.1f} ms)"
        )
    store.dispose()
    index.dispose()


if __name__ == "__main__":
    main()
