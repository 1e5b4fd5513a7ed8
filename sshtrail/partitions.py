"""The store's monthly partitions on PostgreSQL: which exist, making the next ones, and
the id range of each month.

``sessions`` and ``chunks`` are partitioned by RANGE on the session id (migration
0016). Session ids are UUIDv7 (sshtrail/ids.py): their first 48 bits are the start's
Unix milliseconds, so the uuid of a month's first millisecond with every other bit
zero bounds the month, and the primary keys (``sessions.id``, ``chunks (session_id,
seq)``) hold the partition key as PostgreSQL requires. A DEFAULT partition takes any
row no month takes (an id that is not a UUIDv7, a month not made yet): nothing is
ever refused for want of a partition.

Partitions live in their own schema, :data:`SCHEMA`, so the store's schema (what
Alembic compares with the models) holds only the parents. Months are made
:data:`AHEAD` ahead by the store group's background work (consumer/retentionwork.py).
A month whose range already has rows in the DEFAULT partition is not made (PostgreSQL
would refuse it, and moving rows out of DEFAULT would cascade through the foreign
keys): its rows stay served from DEFAULT and are deleted row by row.

SQLite has no partitions: every function here does nothing there.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import uuid
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.engine import Connection

log = logging.getLogger(__name__)

#: The schema the partitions live in.
SCHEMA = "sshtrail_months"
#: The partitioned tables, parents first (a chunk's partition refers to its session's),
#: and the column each is partitioned on.
TABLES = (("sessions", "id"), ("chunks", "session_id"))
#: Months made ahead of the current one.
AHEAD = 3

_NAME = re.compile(r"^(?P<table>[a-z_]+)_y(?P<year>\d{4})m(?P<month>\d{2})$")


@dataclass(frozen=True, order=True, slots=True)
class Month:
    """A calendar month (UTC) and the session ids that start in it."""

    year: int
    month: int

    @classmethod
    def of(cls, when: dt.datetime) -> Month:
        when = when.astimezone(dt.UTC)
        return cls(when.year, when.month)

    def next(self) -> Month:
        return Month(self.year + self.month // 12, self.month % 12 + 1)

    @property
    def start(self) -> dt.datetime:
        return dt.datetime(self.year, self.month, 1, tzinfo=dt.UTC)

    @property
    def end(self) -> dt.datetime:
        return self.next().start

    @property
    def low(self) -> uuid.UUID:
        """The smallest UUIDv7 of the month (inclusive bound)."""
        return first_id(self.start)

    @property
    def high(self) -> uuid.UUID:
        """The smallest UUIDv7 of the next month (exclusive bound)."""
        return first_id(self.end)

    def name(self, table: str) -> str:
        return f"{table}_y{self.year:04d}m{self.month:02d}"

    def __str__(self) -> str:
        return f"{self.year:04d}-{self.month:02d}"


def first_id(when: dt.datetime) -> uuid.UUID:
    """The smallest UUIDv7 of ``when``'s millisecond: the bound between partitions."""
    ms = int(when.timestamp() * 1000)
    return uuid.UUID(int=ms << 80)


def partitioned(conn: Connection, table: str = "sessions") -> bool:
    """Whether ``table`` is partitioned here (PostgreSQL at schema 0016 or later)."""
    if conn.dialect.name != "postgresql":
        return False
    found = conn.execute(
        text(
            "SELECT 1 FROM pg_partitioned_table p JOIN pg_class c ON c.oid = p.partrelid "
            "JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE c.relname = :table AND n.nspname = current_schema()"
        ),
        {"table": table},
    ).first()
    return found is not None


def months(conn: Connection, table: str = "sessions") -> list[Month]:
    """The months ``table`` has a partition for, oldest first (none on SQLite)."""
    if not partitioned(conn, table):
        return []
    names = conn.execute(
        text(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = to_regclass(:parent)"
        ),
        {"parent": table},
    ).scalars()
    found = []
    for name in names:
        match = _NAME.match(name)
        if match and match["table"] == table:
            found.append(Month(int(match["year"]), int(match["month"])))
    return sorted(found)


def ensure_months(conn: Connection, at: dt.datetime, ahead: int = AHEAD) -> list[str]:
    """Make the partitions of ``at``'s month and the ``ahead`` after it that are
    missing; the names made. Nothing on SQLite or an unpartitioned store."""
    if not partitioned(conn):
        return []
    wanted = [Month.of(at)]
    for _ in range(ahead):
        wanted.append(wanted[-1].next())
    have = {table: set(months(conn, table)) for table, _ in TABLES}
    made: list[str] = []
    for month in wanted:
        missing = [table for table, _ in TABLES if month not in have[table]]
        if not missing:
            continue
        # Both tables' or neither: a month drops whole only with both partitions.
        if any(_in_default(conn, table, key, month) for table, key in TABLES):
            log.warning("partitions: %s not made: the DEFAULT partition holds rows of it", month)
            continue
        for table in missing:
            conn.execute(text(create_sql(table, month)))
            made.append(f"{SCHEMA}.{month.name(table)}")
    if made:
        log.info("partitions: made %s", ", ".join(made))
    return made


def create_sql(table: str, month: Month) -> str:
    """The statement making ``table``'s partition of ``month``."""
    return (
        f"CREATE TABLE {SCHEMA}.{month.name(table)} PARTITION OF {table} "
        f"FOR VALUES FROM ('{month.low}') TO ('{month.high}')"
    )


def _in_default(conn: Connection, table: str, key: str, month: Month) -> bool:
    found = conn.execute(
        text(
            f"SELECT 1 FROM {SCHEMA}.{table}_default "  # noqa: S608 -- names are ours
            f"WHERE {key} >= :low AND {key} < :high LIMIT 1"
        ),
        {"low": month.low, "high": month.high},
    ).first()
    return found is not None


def detach_and_drop(conn: Connection, month: Month) -> None:
    """Detach and drop ``month``'s partitions, chunks first (they refer to sessions).

    The caller has written the tombstones and deleted what refers to these sessions
    from unpartitioned tables; PostgreSQL checks, at the detach, that no foreign key
    still refers to a row of them, so a forgotten reference rolls all of it back.
    """
    for table, _ in reversed(TABLES):
        name = f"{SCHEMA}.{month.name(table)}"
        conn.execute(text(f"ALTER TABLE {table} DETACH PARTITION {name}"))
        conn.execute(text(f"DROP TABLE {name}"))
    log.info("partitions: %s detached and dropped", month)
