"""How fast ``retention show`` counts a large store, against reading every session.

Fills a store (SQLite by default, or ``--url``; it must be empty or hold only
what an earlier run of this put there) with ``--sessions`` ended sessions of
1,000 operators on 50 targets spread over a year, then times
:func:`sshtrail.retention.coverage` (grouped in SQL) and, as the baseline of
the same run, the rules applied to each session read one by one -- what
``retention show`` did before. Both must agree; the ratio is what to compare
between machines. The sessions fall on up to 50,000 (operator, target) pairs:
with few sessions per pair (the default) grouping saves least; a real year has
many sessions per pair.

    python -m bench.retention_show [--sessions 200000] [--rules 3] [--url URL]
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
import tempfile
import time
import uuid
from collections.abc import Sequence

from sqlalchemy import func, select
from sqlalchemy.engine import Connection

from sshtrail import holds, migrate, retention
from sshtrail.db import make_engine
from sshtrail.scope import Scope
from sshtrail.states import SessionStatus
from sshtrail.tables import SESSIONS
from tests.support.retentionoracle import one_by_one

AT = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)
#: Rows inserted per statement while filling.
FILL = 10_000


def _fill(conn: Connection, count: int) -> None:
    chosen = random.Random(31)
    operators = [f"op{i}" for i in range(1000)]
    targets = [f"t{i}" for i in range(50)]
    rows = []
    for _ in range(count):
        end = AT - dt.timedelta(seconds=chosen.randrange(365 * 86400))
        rows.append(
            {
                "id": uuid.uuid4(),
                "operator": chosen.choice(operators),
                "target": chosen.choice(targets),
                "started_at": end - dt.timedelta(hours=1),
                "ended_at": end,
                "last_chunk_at": end,
                "status": SessionStatus.CLOSED,
                "bytes_in": 10,
                "bytes_out": 100,
                "chunk_count": 1,
                "gaps": [],
            }
        )
        if len(rows) == FILL:
            conn.execute(SESSIONS.insert(), rows)
            rows = []
    if rows:
        conn.execute(SESSIONS.insert(), rows)


def _one_by_one(
    conn: Connection, rules: Sequence[retention.Rule], at: dt.datetime
) -> list[retention.Coverage]:
    """The baseline: every session read, its rule and due time found in Python."""
    sessions = [dict(row) for row in conn.execute(select(SESSIONS)).mappings()]
    return one_by_one(sessions, rules, holds.active(conn), at)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=200_000)
    parser.add_argument("--rules", type=int, default=3)
    parser.add_argument("--url", default="")
    args = parser.parse_args()
    url = args.url or f"sqlite:///{tempfile.mkdtemp()}/retention_show.db"
    migrate.upgrade(url)
    engine = make_engine(url)
    with engine.begin() as conn:
        if not conn.execute(select(func.count()).select_from(SESSIONS)).scalar():
            _fill(conn, args.sessions)
    rules = [
        retention.Rule(f"r{i}", Scope((f"op{i}*",), ("*",)), dt.timedelta(days=30 * (i + 1)), None)
        for i in range(args.rules)
    ]
    timings: dict[str, float] = {}
    answers: list[list[retention.Coverage]] = []
    for name, count in (("grouped in SQL", retention.coverage), ("one by one", _one_by_one)):
        with engine.connect() as conn:
            started, cpu = time.perf_counter(), time.process_time()
            shown = count(conn, rules, AT)
            timings[name] = time.perf_counter() - started
            cpu = time.process_time() - cpu
        answers.append(shown)
        print(
            f"{name:>15}: {timings[name]:7.2f} s, {cpu:7.2f} s of this process's CPU "
            f"({sum(c.sessions for c in shown)} sessions)"
        )
    if answers[0] != answers[1]:
        raise SystemExit("the two counts differ: retention show is wrong")
    ratio = timings["one by one"] / timings["grouped in SQL"]
    print(f"{'ratio':>15}: {ratio:7.1f}x faster than reading every session")
    engine.dispose()


if __name__ == "__main__":
    main()
