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

The month that is dropped holds real signed chains (the gateway's wire format, each
chunk signed, 96 output bytes a chunk), so its drop verifies them as retention does
and every tombstone says ``ok``; the other months' chunks are random bytes (signing
5 M chunks would take longer than the rest).

Then it times, ``--runs`` times each, the queries behind ``sshtrail sessions``, the
console's list (its third page), ``sshtrail search`` for the rare word and for the
common one within a week, and ``sshtrail transfers --path`` (with its plan, to show
which index answers); then drops the oldest month as retention does
(consumer/deletion.py): the time of each part of the drop (reading the chunks,
verifying, signing, writing the tombstones) measured one after the other, then the
whole drop with the chains verified in this process and with a process pool (one
worker a core), alternately, twice each, all rolled back but the last, with the CPU
time of each; and deletes 200 sessions of another month row by row. Last, the
store group's writer writes the same real recordings into a partitioned and an
unpartitioned (schema 0015) store, alternately, best of 3: the ratio is the
partitioning's cost.

    python -m bench.year [--scale 0.1] [--runs 30] [--month-only | --search-only]
                         [--admin-url ...]

``--month-only`` fills the store and index, then measures only the month's drop and
the row-by-row deletions. ``--search-only`` fills the index alone and times its
searches with the matches fenced (a ``MATERIALIZED`` CTE) and not, before the
index is analyzed and after (:func:`sshtrail.search.fenced` says which it uses).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import random
import resource
import statistics
import time
from collections.abc import Callable, Iterator
from typing import Any, NamedTuple

import psycopg
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import Connection, Engine, insert, select, text

from consumer import chainpool, indexpurge
from consumer.deletion import (
    WRITE_ROWS,
    Deletion,
    chain_of,
    delete_session,
    drop_month,
    month_chunks,
    tombstone_of,
)
from consumer.messages import Received
from consumer.store import StoreWriter
from sshtrail import events, migrate, partitions, queries, search, transferqueries
from sshtrail.chain import ChainWriter
from sshtrail.db import make_engine
from sshtrail.ids import uuid7
from sshtrail.partitions import Month
from sshtrail.tables import DELETIONS, SESSIONS
from sshtrail.wire import decode_chunk
from tests.support.recordings import SIGNER, recording, start_event

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
#: Lines holding :data:`RARE` in the whole index, whatever the scale.
RARE_LINES = 10
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


def signed_chain(session_id: Any, count: int, rng: random.Random) -> list[bytes]:
    """A closed session's ``count`` chunks as a gateway signs them: start, outputs, end."""
    writer = ChainWriter(session_id, SIGNER)
    start = start_event()
    chunks = [writer.encode([start, events.Exec(t=1, mode="exec", command=b"uptime")])]
    for number in range(count - 2):
        chunks.append(writer.encode([events.Output(t=2 + number, data=rng.randbytes(96))]))
    end = events.End(
        t=count,
        reason="closed by client",
        bytes_in=0,
        bytes_out=96 * (count - 2),
        chunks=count,
        key=writer.public_key,
    )
    chunks.append(writer.encode([events.Exit(t=count, status=0), end]))
    return chunks


def dropped_month(now_ms: int) -> Month:
    """The month the benchmark drops: the first whole one of the year."""
    return Month.of(when(now_ms - 365 * DAY)).next()


class Documents:
    """The search lines of the year's sessions, in the index's ``COPY`` column order;
    the rare word in ``RARE_LINES`` of them in all (on average)."""

    def __init__(self, count: int, rng: random.Random) -> None:
        self._count = count
        self._rng = rng
        self._rare_left = RARE_LINES

    def __call__(self, item: dict[str, Any]) -> Iterator[tuple[Any, ...]]:
        rng, span = self._rng, item["end"] - item["start"]
        for number in range(item["lines"]):
            word = WORDS[rng.randrange(len(WORDS))]
            line = f"{word} /var/lib/{rng.getrandbits(32):08x} {number}"
            if rng.randrange(20) == 0:
                line += " error: failed"
            if self._rare_left and rng.randrange(self._count * 4) < RARE_LINES:
                line, self._rare_left = f"{line} {RARE}", self._rare_left - 1
            t = number * span * 1_000_000 // item["lines"]
            at = when(item["start"] + t // 1_000_000)
            kind = "command" if number % 2 == 0 else "output"
            yield (item["id"], kind, number, 0, t, at, item["operator"], item["target"], line, True)


INDEX_COPY = (
    "COPY search_docs (session_id, kind, ordinal, seq, t, at, operator, target, text, "
    "certain) FROM STDIN"
)


def fill_index(index_url: str, count: int, seed: int, now_ms: int) -> int:
    """Fill only the index, through COPY, as :func:`fill` does (its lines drawn from
    their own random stream: the same shape, not the same lines); the lines written."""
    rng = random.Random(seed)
    documents = Documents(count, rng)
    written = 0
    with (
        psycopg.connect(index_url.replace("postgresql+psycopg", "postgresql")) as index,
        index.cursor().copy(INDEX_COPY) as lines,
    ):
        for item in sessions(count, now_ms, rng):
            for line in documents(item):
                lines.write_row(line)
                written += 1
    return written


def fill(store_url: str, index_url: str, count: int, seed: int, now_ms: int) -> dict[str, int]:
    """Fill the store and the index through COPY; the rows written of each kind, the
    :func:`dropped_month`'s sessions with signed chains."""
    rng = random.Random(seed)
    signed = dropped_month(now_ms)
    signing_key = SIGNER.public_key().public_bytes_raw()
    store = make_engine(store_url)
    with store.begin() as conn:
        for back in range(13):  # partitions for the year behind (the months ahead exist)
            partitions.ensure_months(conn, when(now_ms - back * 30 * DAY), ahead=0)
    store.dispose()
    totals = {"sessions": 0, "chunks": 0, "lines": 0, "transfers": 0}
    documents = Documents(count, rng)
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
            "last_seq, gaps, verified, signing_key) FROM STDIN"
        ) as rows,
    ):
        for item in items:
            start, end = when(item["start"]), when(item["end"])
            key = signing_key if signed.low <= item["id"] < signed.high else None
            rows.write_row(
                (item["id"], item["operator"], "10.0.0.1:50000", item["target"], "10.1.0.1",
                 22, "root", "gw-1", "xterm", "shell", "", start, end, end, "closed", 0,
                 item["chunks"] * 10, item["chunks"] * 96, item["chunks"],
                 item["chunks"] - 1, "[]", None, key)
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
        index.cursor().copy(INDEX_COPY) as lines,
    ):
        for item in items:
            sid, end = item["id"], when(item["end"])
            span = item["end"] - item["start"]
            if signed.low <= sid < signed.high:
                datas = signed_chain(sid, item["chunks"], rng)
            else:
                datas = [rng.randbytes(96) for _ in range(item["chunks"])]
            for seq, data in enumerate(datas):
                t = seq * span * 1_000_000 // item["chunks"]
                chunks.write_row((sid, seq, t, t, 0, seq, data, end))
            for line in documents(item):
                lines.write_row(line)
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


def search_plan(index: Engine, query: search.Query, fence: bool) -> str:
    """The plan's scan nodes of a search (which index answers), on one line."""
    with index.connect() as conn:
        compiled = search.statement(conn, query, fence).compile(conn)
        lines = conn.exec_driver_sql(f"EXPLAIN {compiled}", compiled.params).scalars()
        return " | ".join(line.strip() for line in lines if "Scan" in line)


def search_fences(index: Engine, runs: int, now: dt.datetime) -> None:
    """Each search timed with the matches fenced (a MATERIALIZED CTE) and not, with its
    plan, ``*`` marking the way :func:`search.fenced` chooses; a call slower than a
    second is timed 3 times only. Last, the worst case of an unfenced search within a
    range: the ``at`` index walked through all of it (what a word the planner takes
    for common and the range does not hold costs; forced: bitmap scans off)."""
    week = {"since": now - dt.timedelta(days=107), "until": now - dt.timedelta(days=100)}
    month = {"since": now - dt.timedelta(days=131), "until": now - dt.timedelta(days=100)}
    cases = [
        ("error, one week", search.Query("error", **week)),  # type: ignore[arg-type]
        ("error, one month", search.Query("error", **month)),  # type: ignore[arg-type]
        (f"{RARE} (rare)", search.Query(RARE)),
        (f"{RARE} (rare), one week", search.Query(RARE, **week)),  # type: ignore[arg-type]
        (f"{RARE} (rare), one month", search.Query(RARE, **month)),  # type: ignore[arg-type]
        ("error, no range", search.Query("error")),
        ("error, since a week ago", search.Query("error", since=now - dt.timedelta(days=7))),
    ]

    def searching(
        query: search.Query, fence: bool, setting: str = ""
    ) -> Callable[[], list[search.Hit]]:
        def run() -> list[search.Hit]:
            with index.connect() as conn:
                if setting:
                    conn.exec_driver_sql(f"SET {setting}")
                found = search.search(conn, query, fence)
                conn.rollback()
                if setting:
                    conn.exec_driver_sql("RESET ALL")
                return found

        return run

    for name, query in cases:
        for fence in (True, False):
            first = time.perf_counter()
            count = len(searching(query, fence)())
            slow = time.perf_counter() - first > 1.0
            p50, p95 = timed(searching(query, fence), 3 if slow else runs)
            chosen = "*" if search.fenced(query, now) == fence else " "
            way = "fenced" if fence else "unfenced"
            print(
                f"search {name:<28}{chosen}{way:<8} {count:>3} hits "
                f"p50 {p50:8.1f} ms  p95 {p95:8.1f} ms{'  (3 runs)' if slow else ''}  "
                f"plan: {search_plan(index, query, fence)}"
            )
    for span, bounds in (("week", week), ("month", month)):
        absent = search.Query("no-such-word-in-the-index", **bounds)  # type: ignore[arg-type]
        p50, p95 = timed(searching(absent, False, "enable_bitmapscan = off"), runs)
        print(
            f"search, unfenced, the at index walked through a {span}: "
            f"p50 {p50:.1f} ms p95 {p95:.1f} ms"
        )


def index_purges(index: Engine, month: Month) -> None:
    """The index group's purge (consumer/indexpurge.py) of ``month``'s sessions, a page
    of tombstones a transaction as the group reads them: the first page drops the
    partition whole, the others find nothing left; then 2,000 sessions of the next
    month row by row."""
    for whole, chosen in ((True, month), (False, month.next())):
        with index.connect() as conn:
            in_month = (search.DOCS.c.session_id >= chosen.low) & (
                search.DOCS.c.session_id < chosen.high
            )
            query = select(search.DOCS.c.session_id).where(in_month).distinct()
            ids = list(conn.execute(query if whole else query.limit(2000)).scalars())
        started = time.perf_counter()
        for first in range(0, len(ids), indexpurge.PAGE):
            with index.begin() as conn:
                drop = [chosen] if whole and first == 0 else []
                indexpurge.purge(conn, ids[first : first + indexpurge.PAGE], drop)
        took = time.perf_counter() - started
        way = "its partition dropped" if whole else "row by row"
        print(
            f"index purge, {len(ids):,} sessions of {chosen}, {way}: {took:.2f} s, "
            f"{took / len(ids) * 1000:.2f} ms a session; load average {os.getloadavg()[0]:.1f}"
        )


def search_only(admin_url: str, scale: float, seed: int, runs: int) -> None:
    """Fill an index alone (partitioned by month: sshtrail/searchmonths.py) and time its
    searches fenced and not, first never analyzed (autovacuum off on its tables: what
    the planner knows right after a bulk load), then after ``ANALYZE``; then the
    index group's purge of a month, whole and row by row."""
    index_url = database(admin_url, "bench_year_index")
    index = make_engine(index_url)
    search.ensure_schema(index)
    with index.begin() as conn:  # on each partition: a partitioned parent takes none
        children = conn.execute(
            text(
                "SELECT inhrelid::regclass::text FROM pg_inherits "
                "WHERE inhparent = 'search_docs'::regclass"
            )
        ).scalars()
        for table in list(children) or ["search_docs"]:
            conn.execute(text(f"ALTER TABLE {table} SET (autovacuum_enabled = false)"))
    now_ms = time.time_ns() // 1_000_000
    started = time.perf_counter()
    lines = fill_index(index_url, int(250_000 * scale), seed, now_ms)
    print(f"index filled in {time.perf_counter() - started:.0f} s: {lines:,} lines")
    try:
        for stats in ("never analyzed", "analyzed"):
            if stats == "analyzed":
                with psycopg.connect(index_url, autocommit=True) as conn:
                    conn.execute("VACUUM ANALYZE search_docs")
            print(f"-- statistics: {stats}; load average {os.getloadavg()[0]:.1f}")
            search_fences(index, runs, when(now_ms))
        index_purges(index, dropped_month(now_ms))
        print(f"load average at the end {os.getloadavg()[0]:.1f}")
    finally:
        index.dispose()
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute('DROP DATABASE IF EXISTS "bench_year_index" WITH (FORCE)')


#: Chunks in a month at scale 1.0: 5 M a year over 365 days, a month of 30.4 days.
FULL_MONTH_CHUNKS = 416_000


def month_parts(store: Engine, month: Month, deletion: Deletion) -> dict[str, float]:
    """Seconds each part of dropping ``month`` takes, measured one after the other in
    one process: reading its chunks in (session, seq) order, verifying every chain,
    signing the tombstones, writing them (rolled back: the month stays)."""
    chunks = month_chunks(month)
    parts: dict[str, float] = {}
    with store.connect() as conn:
        in_sessions = (SESSIONS.c.id >= month.low) & (SESSIONS.c.id < month.high)
        rows = conn.execute(select(SESSIONS).where(in_sessions)).mappings()
        sessions = {row["id"]: dict(row) for row in rows}
        started = time.perf_counter()
        stored: dict[Any, list[tuple[int, bytes]]] = {}
        for session_id, seq, data in conn.execute(chunks):
            stored.setdefault(session_id, []).append((seq, data))
        parts["read"] = time.perf_counter() - started
        chains = [chain_of(sessions[sid], got) for sid, got in stored.items()]
        started = time.perf_counter()
        checked = chainpool.check(chains)
        parts["verify"] = time.perf_counter() - started
        assert {item.status.value for item in checked} == {"ok"}, "the chains do not verify"
        started = time.perf_counter()
        stones = [tombstone_of(sessions[item.session_id], item, deletion) for item in checked]
        parts["sign"] = time.perf_counter() - started
        started = time.perf_counter()
        for first in range(0, len(stones), WRITE_ROWS):
            conn.execute(insert(DELETIONS), stones[first : first + WRITE_ROWS])
        parts["write"] = time.perf_counter() - started
        conn.rollback()
    return parts


class Took(NamedTuple):
    """Wall and CPU seconds of a month's drop."""

    wall: float
    own_cpu: float
    workers_cpu: float


def timed_drop(
    conn: Connection, month: Month, deletion: Deletion, workers: int
) -> tuple[int | None, Took]:
    """:func:`drop_month` with ``workers`` verifying processes, and what it took (the
    workers' CPU counted once they are ended, as the drop ends its pool)."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    own, started = time.process_time(), time.perf_counter()
    dropped = drop_month(conn, month, lambda _: deletion, workers=workers)
    wall, own = time.perf_counter() - started, time.process_time() - own
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    spent = after.ru_utime + after.ru_stime - children.ru_utime - children.ru_stime
    return dropped, Took(wall, own, max(0.0, spent))


def deletions(store: Engine, month: Month) -> None:
    """Drop ``month`` (signed chains) as retention does, in one process and with a
    pool, twice each (all rolled back but the last); delete 200 sessions of the next
    month row by row."""
    signer = Ed25519PrivateKey.generate()
    at = dt.datetime.now(dt.UTC)
    deletion = Deletion("bench", "bench", "a year", signer, at)
    with store.connect() as conn:
        counts = conn.execute(
            text("SELECT count(*), coalesce(sum(chunk_count), 0)::bigint FROM sessions "
                 "WHERE id >= :low AND id < :high"),
            {"low": month.low, "high": month.high},
        ).one()  # fmt: skip
    sessions_count, chunks = counts
    parts = month_parts(store, month, deletion)
    print(
        f"month {month}, {sessions_count:,} sessions, {chunks:,} signed chunks, its parts "
        "one after the other in one process: "
        + ", ".join(f"{name} {took:.2f} s" for name, took in parts.items())
        + f" (verifying {parts['verify'] / chunks * 1e6:.0f} us a chunk)"
    )
    # Alternately, best of 2 wall times: the machine's load drifts during a run.
    workers = chainpool.cores()
    runs: dict[int, list[Took]] = {1: [], workers: []}
    for last in (False, True):
        for count in (1, workers):
            with store.connect() as conn:
                dropped, took = timed_drop(conn, month, deletion, count)
                if last and count == workers:
                    conn.commit()
                else:
                    conn.rollback()
            assert dropped == sessions_count, (dropped, counts)
            runs[count].append(took)
    single, pooled = (min(runs[count], key=lambda took: took.wall) for count in (1, workers))
    with store.connect() as conn:
        verdicts: dict[str, int] = dict(
            conn.execute(text("SELECT verdict, count(*) FROM deletions GROUP BY verdict")).all()
        )
    assert verdicts == {"ok": sessions_count}, verdicts
    full = FULL_MONTH_CHUNKS / chunks
    for name, took in (("one process", single), (f"{workers} worker processes", pooled)):
        # On ``workers`` cores of its own the drop takes at least its busiest process's
        # CPU time and its total over the cores (the database's own CPU left out).
        free = max(took.own_cpu, (took.own_cpu + took.workers_cpu) / workers)
        print(
            f"month {month} dropped, {name}: {took.wall:.1f} s; CPU {took.own_cpu:.1f} s "
            f"here + {took.workers_cpu:.1f} s in workers, so >= {free:.1f} s on {workers} "
            f"free cores; at scale 1.0 ({FULL_MONTH_CHUNKS:,} chunks, times scaled by "
            f"chunks): {took.wall * full:.0f} s as here, >= {free * full:.0f} s on free cores"
        )
    walls = {
        count: ", ".join(f"{took.wall:.1f}" for took in took_) for count, took_ in runs.items()
    }
    print(
        f"every tombstone 'ok'; walls, one process {walls[1]} s, pool {walls[workers]} s; "
        f"pool against one process, best wall: x{single.wall / pooled.wall:.2f}"
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
            delete_session(conn, sid, deletion)
    per_session = (time.perf_counter() - started) / len(ids)
    print(
        f"row by row (unsigned chunks): {per_session * 1000:.1f} ms a session: a month of "
        f"{sessions_count:,} would take {per_session * sessions_count:.0f} s"
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
    parser.add_argument(
        "--month-only", action="store_true", help="measure only the month's drop and deletions"
    )
    parser.add_argument(
        "--search-only",
        action="store_true",
        help="fill only the index; time searches with and without the fence",
    )
    args = parser.parse_args()
    if args.search_only:
        search_only(args.admin_url, args.scale, args.seed, args.runs)
        return
    store_url = database(args.admin_url, "bench_year_store")
    index_url = database(args.admin_url, "bench_year_index")
    migrate.upgrade(store_url)
    store, index = make_engine(store_url), make_engine(index_url)
    search.ensure_schema(index)
    started = time.perf_counter()
    now_ms = time.time_ns() // 1_000_000
    totals = fill(store_url, index_url, int(250_000 * args.scale), args.seed, now_ms)
    print(
        f"filled in {time.perf_counter() - started:.0f} s: "
        + ", ".join(f"{value:,} {name}" for name, value in totals.items())
    )
    store.dispose()
    if not args.month_only:
        plain_url = copy_unpartitioned(args.admin_url, store_url)
        plain = make_engine(plain_url)
        store = make_engine(store_url)
        for layout, engine in (("partitioned", store), ("unpartitioned (0015)", plain)):
            print(f"-- {layout}")
            queries_at_size(engine, index, args.runs)
        plain.dispose()
    store = make_engine(store_url)
    deletions(store, dropped_month(now_ms))
    store.dispose()
    index.dispose()
    if not args.month_only:
        throughput(args.admin_url, 100)
    with psycopg.connect(args.admin_url, autocommit=True) as conn:
        for name in ("store", "index", "plain", "partitioned", "unpartitioned"):
            conn.execute(f'DROP DATABASE IF EXISTS "bench_year_{name}" WITH (FORCE)')
    print(f"database size dropped; run took {time.perf_counter() - started:.0f} s in all")


if __name__ == "__main__":
    main()
