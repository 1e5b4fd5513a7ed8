"""A year of a 1,000-operator site on PostgreSQL: do listings, searches, path queries
and dropping a month stay fast, and does partitioning cost the store group anything?

Fills a fresh store (at the latest schema: partitioned by month) and a search index
with a generated year, straight through COPY (the pipeline would take hours here):

* 1,000 operators, 200 targets; ``250,000 * scale`` sessions, their starts spread
  evenly over the 365 days before now, each 1-60 minutes long;
* 20 chunks a session on average (uniform 2-38), 96 bytes each: ``5 M * scale``;
* 40 search lines a session on average (uniform 1-79): ``10 M * scale``; one line
  in 20 holds the common word ``error``, 10 lines in all the rare one ``zqxjvk``;
* 2 file transfers a session, under ``/srv/<target>/releases/`` or ``/home/<op>/``.

Chunks are not signed chains (signing 5 M chunks would take longer than the rest):
the month drop verifies each session's chain all the same, but finds it broken at
the first chunk; the cost of verifying real chains is measured apart, per chunk, and
added (``month drop, extrapolated``).

Then it times, ``--runs`` times each, the queries behind ``sshtrail sessions``, the
console's list (its third page), ``sshtrail search`` for the rare word and for the
common one within a week, and ``sshtrail transfers --path`` (with its plan, to show
which index answers); then drops the oldest month as retention does
(consumer/deletion.py) and deletes 200 sessions of another row by row. Last, the
store group's writer writes the same real recordings into a partitioned and an
unpartitioned (schema 0015) store, alternately, best of 3: the ratio is the
partitioning's cost.

    python -m bench.year [--scale 0.1] [--runs 30] [--admin-url postgresql://...]
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
import statistics
import time
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import Engine, text

from consumer.deletion import delete_session, drop_month
from consumer.messages import Received
from consumer.store import StoreWriter
from sshtrail import migrate, partitions, queries, search, transferqueries
from sshtrail.chain import verify_chain
from sshtrail.db import make_engine
from sshtrail.ids import uuid7
from sshtrail.partitions import Month
from sshtrail.wire import decode_chunk
from tests.support.recordings import SIGNER, recording

OPERATORS = [f"op{number:04d}" for number in range(1000)]
TARGETS = [f"host{number:03d}" for number in range(200)]
WORDS = [
    "ls",
    "cd",
    "cat",
    "grep",
    "tail",
    "less",
    "systemctl",
    "journalctl",
    "docker",
    "kubectl",
    "vim",
    "git",
    "make",
]
RARE = "zqxjvk"
DAY = 86_400_000


def timed(work: Callable[[], object], runs: int) -> tuple[float, float]:
    """p50 and p95 of ``runs`` calls, in ms (the first call, which warms the caches,
    not counted)."""
    work()
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        work()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times), statistics.quantiles(times, n=20)[18]


def database(admin_url: str, name: str) -> str:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    return f"{admin_url.rpartition('/')[0]}/{name}"


def sessions(count: int, now_ms: int, rng: random.Random) -> Iterator[dict[str, Any]]:
    """The year's sessions, starts evenly spread over the last 365 days."""
    for number in range(count):
        start = now_ms - 365 * DAY + (number * 365 * DAY) // count + rng.randrange(60_000)
        end = start + rng.randrange(60_000, 3_600_000)
        yield {
            "id": uuid7(start),
            "operator": OPERATORS[number % len(OPERATORS)],
            "target": TARGETS[rng.randrange(len(TARGETS))],
            "start": start,
            "end": end,
            "chunks": rng.randrange(2, 39),
            "lines": rng.randrange(1, 80),
        }


def when(ms: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC)


def fill(store_url: str, index_url: str, count: int, seed: int) -> dict[str, int]:
    """Fill the store and the index through COPY; the rows written of each kind."""
    rng = random.Random(seed)
    now_ms = time.time_ns() // 1_000_000
    store = make_engine(store_url)
    with store.begin() as conn:
        for back in range(13):  # partitions for the year behind (the months ahead exist)
            partitions.ensure_months(conn, when(now_ms - back * 30 * DAY), ahead=0)
    store.dispose()
    totals = {"sessions": 0, "chunks": 0, "lines": 0, "transfers": 0}
    rare_left = 10
    dsn = store_url.replace("postgresql+psycopg", "postgresql")
    index_dsn = index_url.replace("postgresql+psycopg", "postgresql")
    items = list(sessions(count, now_ms, rng))
    # One COPY at a time a connection; the sessions committed first, for the foreign keys.
    with (
        psycopg.connect(dsn) as db,
        db.cursor().copy(
            "COPY sessions (id, operator, client, target, target_host, target_port, "
            "target_user, gateway, term, request, command, started_at, ended_at, "
            "last_chunk_at, status, exit_status, bytes_in, bytes_out, chunk_count, "
            "last_seq, gaps, verified) FROM STDIN"
        ) as rows,
    ):
        for item in items:
            start, end = when(item["start"]), when(item["end"])
            rows.write_row(
                (item["id"], item["operator"], "10.0.0.1:50000", item["target"], "10.1.0.1",
                 22, "root", "gw-1", "xterm", "shell", "", start, end, end, "closed", 0,
                 item["chunks"] * 10, item["chunks"] * 96, item["chunks"],
                 item["chunks"] - 1, "[]", None)
            )  # fmt: skip
            totals["sessions"] += 1
    with (
        psycopg.connect(dsn) as db,
        psycopg.connect(dsn) as db2,
        psycopg.connect(index_dsn) as index,
        db.cursor().copy(
            'COPY chunks (session_id, seq, t_first, t_last, partition, "offset", data, '
            "received_at) FROM STDIN"
        ) as chunks,
        db2.cursor().copy(
            "COPY transfers (session_id, idx, t, protocol, op, path, status, bytes, detail) "
            "FROM STDIN"
        ) as transfers,
        index.cursor().copy(
            "COPY search_docs (session_id, kind, ordinal, seq, t, at, operator, target, "
            "text, certain) FROM STDIN"
        ) as lines,
    ):
        for item in items:
            sid, end = item["id"], when(item["end"])
            span = item["end"] - item["start"]
            for seq in range(item["chunks"]):
                t = seq * span * 1_000_000 // item["chunks"]
                chunks.write_row((sid, seq, t, t, 0, seq, rng.randbytes(96), end))
            for number in range(item["lines"]):
                word = WORDS[rng.randrange(len(WORDS))]
                line = f"{word} /var/lib/{rng.getrandbits(32):08x} {number}"
                if rng.randrange(20) == 0:
                    line += " error: failed"
                if rare_left and rng.randrange(count * 4) < 10:
                    line, rare_left = f"{line} {RARE}", rare_left - 1
                t = number * span * 1_000_000 // item["lines"]
                at = when(item["start"] + t // 1_000_000)
                kind = "command" if number % 2 == 0 else "output"
                lines.write_row(
                    (sid, kind, number, 0, t, at, item["operator"], item["target"], line, True)
                )
            for idx in range(2):
                folder = (
                    f"/srv/{item['target']}/releases" if idx == 0 else f"/home/{item['operator']}"
                )
                path = f"{folder}/{rng.getrandbits(24):06x}.tar.gz"
                transfers.write_row(
                    (sid, idx, idx, "sftp", ("upload", "download")[idx], path, "ok", 1, "{}")
                )
            totals["chunks"] += item["chunks"]
            totals["lines"] += item["lines"]
            totals["transfers"] += 2
    for url in (store_url, index_url):
        with psycopg.connect(url.replace("postgresql+psycopg", "postgresql"), autocommit=True) as c:
            c.execute("VACUUM ANALYZE")
    return totals


def copy_unpartitioned(admin_url: str, store_url: str) -> str:
    """The filled store copied (``CREATE DATABASE ... TEMPLATE``) and taken down to
    schema 0015, plain tables: the same rows, to time the same queries on."""
    name = store_url.rpartition("/")[2]
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute('DROP DATABASE IF EXISTS "bench_year_plain" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "bench_year_plain" TEMPLATE "{name}"')
    url = f"{store_url.rpartition('/')[0]}/bench_year_plain"
    migrate.downgrade(url, "0015")
    with psycopg.connect(url.replace("postgresql+psycopg", "postgresql"), autocommit=True) as c:
        c.execute("VACUUM ANALYZE")
    return url


def plan_of(engine: Engine, statement: Any) -> str:
    """The plan's node types, to show which index answers (no Seq Scan on transfers)."""
    compiled = statement.compile(engine, compile_kwargs={"literal_binds": True})
    with engine.connect() as conn:
        lines = conn.execute(text(f"EXPLAIN {compiled}")).scalars()
        return " | ".join(line.strip() for line in lines if "Scan" in line)


def queries_at_size(store: Engine, index: Engine, runs: int) -> None:
    week_end = dt.datetime.now(dt.UTC) - dt.timedelta(days=100)
    week = (week_end - dt.timedelta(days=7), week_end)

    def listing(wanted: queries.SessionFilter) -> Callable[[], object]:
        def run() -> object:
            with store.connect() as conn:
                rows = queries.list_sessions(conn, wanted)
                return queries.short_ids(conn, [row["id"] for row in rows])

        return run

    def searching(wanted: search.Query) -> Callable[[], object]:
        def run() -> object:
            with index.connect() as conn:
                return search.search(conn, wanted)

        return run

    def transfers(wanted: transferqueries.TransferFilter) -> Callable[[], object]:
        def run() -> object:
            with store.connect() as conn:
                return transferqueries.list_transfers(conn, wanted)

        return run

    cases = [
        ("sessions (newest 50)", listing(queries.SessionFilter())),
        ("sessions --operator op0042", listing(queries.SessionFilter(operator="op0042"))),
        ("console list, page 3", listing(queries.SessionFilter(offset=100))),
        (f"search {RARE} (rare)", searching(search.Query(RARE))),
        ("search error, one week", searching(search.Query("error", since=week[0], until=week[1]))),
        (
            "transfers --path '/srv/host042/*'",
            transfers(transferqueries.TransferFilter(path="/srv/host042/*")),
        ),
        (
            "transfers --path '*/0a1b*' (substring)",
            transfers(transferqueries.TransferFilter(path="*/0a1b*")),
        ),
    ]
    for name, work in cases:
        p50, p95 = timed(work, runs)
        print(f"{name:<42} p50 {p50:8.1f} ms  p95 {p95:8.1f} ms")
    for pattern in ("/srv/host042/%", "%/0a1b%"):
        statement = text(f"SELECT id FROM transfers WHERE path LIKE '{pattern}' LIMIT 100")
        print(f"plan, path LIKE '{pattern}': {plan_of(store, statement)}")


def verify_cost_per_chunk(chunks: int = 20, sessions_count: int = 50) -> float:
    """Seconds to verify one chunk of a real signed chain (what the fill's chunks lack)."""
    made = [recording(chunks=chunks) for _ in range(sessions_count)]
    key = SIGNER.public_key().public_bytes_raw()
    started = time.perf_counter()
    for _, messages in made:
        verdict = verify_chain(list(enumerate(messages)), [key])
        assert verdict.status.value == "ok", verdict
    return (time.perf_counter() - started) / (chunks * sessions_count)


def deletions(store: Engine, per_chunk_s: float) -> None:
    """Drop the oldest full month as retention does; delete 200 sessions row by row."""
    signer = Ed25519PrivateKey.generate()
    at = dt.datetime.now(dt.UTC)
    with store.connect() as conn:
        month = partitions.months(conn)[1]  # the first one is partial: the year began in it
        counts = conn.execute(
            text("SELECT count(*), coalesce(sum(chunk_count), 0)::bigint FROM sessions "
                 "WHERE id >= :low AND id < :high"),
            {"low": month.low, "high": month.high},
        ).one()  # fmt: skip
    started = time.perf_counter()
    with store.begin() as conn:
        dropped = drop_month(
            conn, month, lambda _: ("bench", "a year"), by="bench", signer=signer, at=at
        )
    took = time.perf_counter() - started
    assert dropped == counts[0], (dropped, counts)
    print(
        f"month {month} dropped: {counts[0]:,} sessions, {counts[1]:,} chunks in {took:.1f} s; "
        f"with real chains (+{per_chunk_s * 1e6:.0f} us a chunk) "
        f"{took + counts[1] * per_chunk_s:.1f} s"
    )
    next_month: Month = month.next()
    with store.connect() as conn:
        ids = list(
            conn.execute(
                text("SELECT id FROM sessions WHERE id >= :low AND id < :high LIMIT 200"),
                {"low": next_month.low, "high": next_month.high},
            ).scalars()
        )
    started = time.perf_counter()
    for sid in ids:
        with store.begin() as conn:
            delete_session(conn, sid, rule="bench", by="bench", reason="x", signer=signer, at=at)
    per_session = (time.perf_counter() - started) / len(ids)
    print(
        f"row by row: {per_session * 1000:.1f} ms a session: a month of {counts[0]:,} "
        f"would take {per_session * counts[0]:.0f} s"
    )


def throughput(admin_url: str, sessions_count: int) -> None:
    """Chunks a second the store group's writer stores, partitioned against not."""
    made = [recording(chunks=20, payload=400) for _ in range(sessions_count)]
    at = dt.datetime.now(dt.UTC)
    batches = [[Received(decode_chunk(m), 0, i, at) for i, m in enumerate(ms)] for _, ms in made]
    chunks = sum(len(batch) for batch in batches)
    best = {"partitioned": 0.0, "unpartitioned": 0.0}
    for round_ in range(3):
        for layout, revision in (("partitioned", "head"), ("unpartitioned", "0015")):
            url = database(admin_url, f"bench_year_{layout}")
            migrate.upgrade(url, revision)
            engine = make_engine(url)
            writer = StoreWriter(engine, dt.timedelta(hours=1))
            started = time.perf_counter()
            for batch in batches:
                writer.write(batch)
            rate = chunks / (time.perf_counter() - started)
            best[layout] = max(best[layout], rate)
            engine.dispose()
            print(f"  round {round_ + 1}, {layout}: {rate:,.0f} chunks/s")
    ratio = best["partitioned"] / best["unpartitioned"]
    print(
        f"store writer, best of 3: partitioned {best['partitioned']:,.0f} chunks/s, "
        f"unpartitioned {best['unpartitioned']:,.0f} chunks/s, ratio {ratio:.2f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=0.1, help="1.0 = 250,000 sessions")
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--admin-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--seed", type=int, default=31)
    args = parser.parse_args()
    store_url = database(args.admin_url, "bench_year_store")
    index_url = database(args.admin_url, "bench_year_index")
    migrate.upgrade(store_url)
    store, index = make_engine(store_url), make_engine(index_url)
    search.ensure_schema(index)
    started = time.perf_counter()
    totals = fill(store_url, index_url, int(250_000 * args.scale), args.seed)
    print(
        f"filled in {time.perf_counter() - started:.0f} s: "
        + ", ".join(f"{value:,} {name}" for name, value in totals.items())
    )
    store.dispose()
    plain_url = copy_unpartitioned(args.admin_url, store_url)
    plain = make_engine(plain_url)
    store = make_engine(store_url)
    for layout, engine in (("partitioned", store), ("unpartitioned (0015)", plain)):
        print(f"-- {layout}")
        queries_at_size(engine, index, args.runs)
    plain.dispose()
    deletions(store, verify_cost_per_chunk())
    store.dispose()
    index.dispose()
    throughput(args.admin_url, 100)
    with psycopg.connect(args.admin_url, autocommit=True) as conn:
        for name in ("store", "index", "plain", "partitioned", "unpartitioned"):
            conn.execute(f'DROP DATABASE IF EXISTS "bench_year_{name}" WITH (FORCE)')
    print(f"database size dropped; run took {time.perf_counter() - started:.0f} s in all")


if __name__ == "__main__":
    main()
