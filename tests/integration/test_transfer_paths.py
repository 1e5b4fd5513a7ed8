"""``sshtrail transfers --path`` on a store of some size: PostgreSQL finds the rows
through the trigram indexes on ``path`` and ``path2`` (migration 0017), for a prefix
and a substring, without reading the whole table; and both engines list the same
transfers as the shell pattern says, whatever LIKE would make of the path's ``%``,
``_``, ``\\`` or ``[``."""

from __future__ import annotations

import datetime as dt
import fnmatch
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, event, insert, text

from sshtrail import migrate
from sshtrail.db import make_engine
from sshtrail.ids import uuid7
from sshtrail.tables import SESSIONS, TRANSFERS
from sshtrail.transferqueries import TransferFilter, list_transfers
from tests.support import postgres

pytestmark = pytest.mark.integration

#: Sessions filled (two transfers each, a rename now and then): enough rows that
#: reading the whole table costs PostgreSQL more than the index does.
SESSION_COUNT = 15_000
#: Paths with what LIKE would take for wildcards or an escape, and fnmatch would not.
ODD_PATHS = (
    "/srv/host007/a_b%c.txt",
    "/srv/host007/back\\slash",
    "/srv/host007/x[1].log",
    "/srv/host007/y[2.log",
)
#: (pattern, whether PostgreSQL must find it through the trigram indexes). The others
#: match too many rows for an index to pay, or hold no three letters in a row.
PATTERNS = (
    ("/srv/host042/*", True),
    ("*/0a1b*", True),
    ("*/archive/*", False),  # only a rename's new path (path2) has it; 1 row in 100
    # Its literal text ("releases/", then "a1": a class cuts it) is in half the rows:
    # from its sampled statistics PostgreSQL may as well walk the newest sessions
    # and probe their transfers (no sequential scan either), and sometimes does.
    ("*releases/[0-3]a1*", False),
    ("/srv/host007/a_b%c.txt", True),
    ("/srv/host007/back\\slash", True),
    ("/srv/host007/x[[]1].log", True),  # a class of "[": the path's own brackets
    ("/srv/host007/y[2*", True),  # a "[" never closed is itself
    ("*.gz", False),
    ("*ab*", False),
)


def made_up() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Sessions over a month and their transfers (a rename's new path now and then)."""
    rng = random.Random(31)
    start = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
    sessions, transfers = [], []
    for number in range(SESSION_COUNT):
        at = start + dt.timedelta(minutes=3 * number)
        sid = uuid7(int(at.timestamp() * 1000))
        target, operator = f"host{rng.randrange(200):03d}", f"op{rng.randrange(1000):04d}"
        sessions.append(
            {
                "id": sid,
                "status": "closed",
                "operator": operator,
                "target": target,
                "started_at": at,
                "bytes_in": 0,
                "bytes_out": 0,
                "chunk_count": 0,
                "gaps": [],
            }
        )
        paths: list[tuple[str, str | None]] = [
            (f"/srv/{target}/releases/{rng.getrandbits(24):06x}.tar.gz", None),
            (f"/home/{operator}/{rng.getrandbits(24):06x}.tar.gz", None),
        ]
        if number % 50 == 0:
            paths.append((paths[0][0], f"/srv/{target}/archive/{rng.getrandbits(24):06x}.tgz"))
        if number < len(ODD_PATHS):
            paths.append((ODD_PATHS[number], None))
        for idx, (path, path2) in enumerate(paths):
            transfers.append(
                {
                    "session_id": sid,
                    "idx": idx,
                    "t": idx,
                    "protocol": "sftp",
                    "op": "upload" if path2 is None else "rename",
                    "path": path,
                    "path2": path2,
                    "status": "ok",
                    "bytes": 1,
                    "detail": {},
                }
            )
    return sessions, transfers


def fill(engine: Engine, sessions: list[dict[str, Any]], transfers: list[dict[str, Any]]) -> None:
    with engine.begin() as conn:
        conn.execute(insert(SESSIONS), sessions)
        conn.execute(insert(TRANSFERS), transfers)
    if engine.dialect.name == "postgresql":
        # As autovacuum leaves them: the planner's statistics, and the rows inserted
        # since the trigram indexes were made moved from their GIN pending lists (which
        # PostgreSQL costs as read whole) into the indexes proper.
        # Sampled from every row (a target of 1,000 samples 300,000), so the plans
        # are the same at every run: a sample of 30,000 of the 30,300 transfers once
        # tipped a borderline pattern's plan.
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("SET default_statistics_target = 1000"))
            conn.execute(text("VACUUM ANALYZE sessions, transfers"))


@pytest.fixture(scope="module")
def stores(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A SQLite and a PostgreSQL store at the latest schema with the same transfers."""
    sqlite_url = f"sqlite:///{Path(tmp_path_factory.mktemp('paths')) / 'store.db'}"
    with postgres.fresh_database() as postgres_url:
        engines = {}
        for url in (sqlite_url, postgres_url):
            migrate.upgrade(url)
            engines[url.partition(":")[0]] = make_engine(url)
        sessions, transfers = made_up()
        for engine in engines.values():
            fill(engine, sessions, transfers)
        starts = {session["id"]: session["started_at"] for session in sessions}
        rows = [{**row, "started_at": starts[row["session_id"]]} for row in transfers]
        yield {"engines": engines, "rows": rows}
        for engine in engines.values():
            engine.dispose()


def listed(engine: Engine, pattern: str) -> list[tuple[Any, ...]]:
    with engine.connect() as conn:
        found = list_transfers(conn, TransferFilter(path=pattern, limit=100_000))
    return [(row["session_id"], row["idx"]) for row in found]


def plan(engine: Engine, pattern: str) -> str:
    """The plan PostgreSQL makes for the cursor ``list_transfers`` reads through:
    its statement, caught on the way to the database, under ``EXPLAIN DECLARE``."""
    sent: list[tuple[str, Any]] = []

    def catch(conn: Any, cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            sent.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", catch)
    try:
        listed(engine, pattern)
    finally:
        event.remove(engine, "before_cursor_execute", catch)
    [(statement, parameters)] = sent
    with engine.connect() as conn:
        lines = conn.exec_driver_sql(f"EXPLAIN DECLARE paths CURSOR FOR {statement}", parameters)
        return "\n".join(line for (line,) in lines)


@pytest.mark.parametrize(("pattern", "indexed"), PATTERNS)
def test_path_patterns_list_the_same_transfers_on_both_engines(
    stores: dict[str, Any], pattern: str, indexed: bool
) -> None:
    newest_first = sorted(
        stores["rows"], key=lambda row: (-row["started_at"].timestamp(), row["session_id"])
    )
    expected = [
        (row["session_id"], row["idx"])
        for row in newest_first
        if fnmatch.fnmatchcase(row["path"], pattern)
        or (row["path2"] is not None and fnmatch.fnmatchcase(row["path2"], pattern))
    ]
    assert expected, f"the filled rows hold no match for {pattern!r}"
    for name, engine in stores["engines"].items():
        assert listed(engine, pattern) == expected, name


@pytest.mark.parametrize("pattern", [pattern for pattern, indexed in PATTERNS if indexed])
def test_postgresql_finds_paths_through_the_trigram_indexes(
    stores: dict[str, Any], pattern: str
) -> None:
    found = plan(stores["engines"]["postgresql"], pattern)
    assert "Seq Scan on transfers" not in found, found
    assert "Bitmap Index Scan on ix_transfers_path2_trgm" in found, found
    # A path with no wildcard is an equality PostgreSQL asks the btree on ``path``.
    wild = any(char in pattern for char in "*?[")
    on_path = "ix_transfers_path_trgm" if wild else "ix_transfers_path"
    assert f"Bitmap Index Scan on {on_path} " in found, found
