"""Monthly partitions on PostgreSQL (issue 31): ``sessions`` and ``chunks`` become
tables partitioned by RANGE on the session id, one partition a month in the schema
``sshtrail_months`` (sshtrail/partitions.py), so retention drops a month instead of
deleting its rows. SQLite is unchanged.

The upgrade works in place, in the store's own database: each table is moved aside
(into a scratch schema, with its indexes, constraints and triggers), a partitioned
table with the same columns, constraints, indexes and triggers takes its name, a
partition is made for every month the stored ids fall in plus the current month and
the three after it, and a DEFAULT one; the rows are copied over and the old table
dropped. The foreign keys to and from the two tables are dropped first and made
again last (PostgreSQL checks them then). Everything is read from the catalog, so
what earlier revisions declared is kept exactly and ``alembic check`` stays clean.

The copy reads and writes the whole store once, in this migration's transaction:
plan for the time of a ``VACUUM FULL`` of the two tables. The downgrade copies them
back into plain tables the same way.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-07
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence

from alembic import op
from sqlalchemy import text
from sqlalchemy.engine import Connection

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_MONTHS = "sshtrail_months"
_SCRATCH = "sshtrail_rebuild"
#: (table, partition key), parents first.
_TABLES = (("sessions", "id"), ("chunks", "session_id"))
_AHEAD = 3

#: The Unix milliseconds of a UUIDv7, for the ids that are one (version nibble 7).
_MS = "('x' || lpad(left(replace({key}::text, '-', ''), 12), 16, '0'))::bit(64)::bigint"
_IS_UUID7 = "substr({key}::text, 15, 1) = '7'"
#: Python's dates end before the year 10,000; later UUIDv7 times go to DEFAULT.
_YEAR_10000_MS = 253_402_300_800_000


def upgrade() -> None:
    conn = op.get_bind()
    if conn.dialect.name != "postgresql":
        return
    _rebuild(conn, partitioned=True)


def downgrade() -> None:
    conn = op.get_bind()
    if conn.dialect.name != "postgresql":
        return
    _rebuild(conn, partitioned=False)
    conn.execute(text(f"DROP SCHEMA IF EXISTS {_MONTHS} CASCADE"))


def _rebuild(conn: Connection, *, partitioned: bool) -> None:
    # The copy takes as long as the store is big: no statement limit for it.
    conn.execute(text("SET LOCAL statement_timeout = 0"))
    conn.execute(text(f"CREATE SCHEMA IF NOT EXISTS {_SCRATCH}"))
    if partitioned:
        conn.execute(text(f"CREATE SCHEMA IF NOT EXISTS {_MONTHS}"))
    names = [table for table, _ in _TABLES]
    foreign = _foreign_keys(conn, names)
    for table, name, _ in foreign:
        conn.execute(text(f'ALTER TABLE {table} DROP CONSTRAINT "{name}"'))
    months = _stored_months(conn) if partitioned else []
    for table, key in _TABLES:
        keys = _constraints(conn, table)
        indexes = _indexes(conn, table)
        triggers = _triggers(conn, table)
        conn.execute(text(f"ALTER TABLE {table} SET SCHEMA {_SCRATCH}"))
        layout = f" PARTITION BY RANGE ({key})" if partitioned else ""
        conn.execute(
            text(
                f"CREATE TABLE {table} (LIKE {_SCRATCH}.{table} INCLUDING DEFAULTS "
                f"INCLUDING CONSTRAINTS INCLUDING STORAGE INCLUDING COMMENTS){layout}"
            )
        )
        for name, definition in keys:
            conn.execute(text(f'ALTER TABLE {table} ADD CONSTRAINT "{name}" {definition}'))
        for statement in (*indexes, *triggers):
            conn.execute(text(statement))
        if partitioned:
            for low, high, name in months:
                conn.execute(
                    text(
                        f"CREATE TABLE {_MONTHS}.{table}_{name} PARTITION OF {table} "
                        f"FOR VALUES FROM ('{low}') TO ('{high}')"
                    )
                )
            conn.execute(
                text(f"CREATE TABLE {_MONTHS}.{table}_default PARTITION OF {table} DEFAULT")
            )
        copy = f"INSERT INTO {table} SELECT * FROM {_SCRATCH}.{table}"  # noqa: S608 -- ours
        conn.execute(text(copy))
        conn.execute(text(f"DROP TABLE {_SCRATCH}.{table}"))
    for table, name, definition in foreign:
        conn.execute(text(f'ALTER TABLE {table} ADD CONSTRAINT "{name}" {definition}'))
    conn.execute(text(f"DROP SCHEMA {_SCRATCH}"))
    for table, _ in _TABLES:
        conn.execute(text(f"ANALYZE {table}"))


def _foreign_keys(conn: Connection, tables: list[str]) -> list[tuple[str, str, str]]:
    """(table, name, definition) of every foreign key from or to ``tables``, captured
    while they are in the search path so the definitions name them unqualified."""
    rows = conn.execute(
        text(
            "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid) "
            "FROM pg_constraint WHERE contype = 'f' AND conparentid = 0 "
            "AND (conrelid = ANY(:oids) OR confrelid = ANY(:oids)) ORDER BY conname"
        ),
        {"oids": _oids(conn, tables)},
    )
    return [(table, name, definition) for table, name, definition in rows]


def _constraints(conn: Connection, table: str) -> list[tuple[str, str]]:
    """The primary key and unique constraints (checks and NOT NULL come with LIKE)."""
    rows = conn.execute(
        text(
            "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
            "WHERE conrelid = to_regclass(:table) AND contype IN ('p', 'u') ORDER BY conname"
        ),
        {"table": table},
    )
    return [(name, definition) for name, definition in rows]


def _indexes(conn: Connection, table: str) -> list[str]:
    """The statements making the indexes no constraint owns."""
    rows = conn.execute(
        text(
            "SELECT pg_get_indexdef(i.indexrelid) FROM pg_index i "
            "JOIN pg_class c ON c.oid = i.indexrelid WHERE i.indrelid = to_regclass(:table) "
            "AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = i.indexrelid) "
            "ORDER BY c.relname"
        ),
        {"table": table},
    )
    # A partitioned table's index reads "ON ONLY": made before its partitions, it
    # is made on them too; on a plain table the word means nothing.
    return [statement.replace(" ON ONLY ", " ON ") for statement in rows.scalars()]


def _triggers(conn: Connection, table: str) -> list[str]:
    rows = conn.execute(
        text(
            "SELECT pg_get_triggerdef(oid) FROM pg_trigger WHERE tgrelid = to_regclass(:table) "
            "AND NOT tgisinternal ORDER BY tgname"
        ),
        {"table": table},
    )
    return list(rows.scalars())


def _oids(conn: Connection, tables: list[str]) -> list[int]:
    return [
        conn.execute(text("SELECT to_regclass(:table)::oid"), {"table": table}).scalar_one()
        for table in tables
    ]


def _stored_months(conn: Connection) -> list[tuple[uuid.UUID, uuid.UUID, str]]:
    """(low id, high id, name suffix) of every month a stored UUIDv7 starts in, from
    before the year 10,000 (other ids go to DEFAULT), and of the current month and
    the next ones."""
    ms = _MS.format(key="id")
    found = conn.execute(
        text(
            f"SELECT DISTINCT date_trunc('month', to_timestamp({ms} / 1000.0) "  # noqa: S608
            f"AT TIME ZONE 'UTC') FROM sessions WHERE {_IS_UUID7.format(key='id')} "
            f"AND {ms} < {_YEAR_10000_MS}"
        )
    ).scalars()
    starts = {(when.year, when.month) for when in found if when.year < 10_000}
    now = dt.datetime.now(dt.UTC)
    year, month = now.year, now.month
    for _ in range(_AHEAD + 1):
        starts.add((year, month))
        year, month = year + month // 12, month % 12 + 1
    return [_bounds(year, month) for year, month in sorted(starts)]


def _bounds(year: int, month: int) -> tuple[uuid.UUID, uuid.UUID, str]:
    start = dt.datetime(year, month, 1, tzinfo=dt.UTC)
    end = dt.datetime(year + month // 12, month % 12 + 1, 1, tzinfo=dt.UTC)

    def first(when: dt.datetime) -> uuid.UUID:
        return uuid.UUID(int=int(when.timestamp() * 1000) << 80)

    return first(start), first(end), f"y{year:04d}m{month:02d}"
