"""The search index's monthly partitions on PostgreSQL: ``search_docs`` by session id.

``search_docs`` is partitioned by RANGE on ``session_id``, one partition a month of
session starts, as the store's ``sessions`` and ``chunks`` are (sshtrail/partitions.py:
UUIDv7 ids, whose first 48 bits are the start's milliseconds, bound the months). Not
on ``at``: the unique key that makes indexing idempotent, ``(session_id, kind,
ordinal)``, must hold the partition key, and ``at`` may be NULL; and a month of
sessions is what retention deletes, so the month the store drops is one partition
here too, whose documents all go at once when every session of it the index holds
has a tombstone in the store (consumer/indexpurge.py). A DEFAULT partition takes what
no month takes (a month not made, an id that is not a UUIDv7); a month whose range
already has rows there is not made, and those rows are deleted row by row.

An index made before (schema 6 or older) keeps its plain table, which answers the
same; ``sshtrail index --rebuild`` makes it partitioned. SQLite has no partitions:
every function here does nothing there.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid

from sqlalchemy import (
    Column,
    Index,
    Integer,
    MetaData,
    Sequence,
    Table,
    UniqueConstraint,
    text,
)
from sqlalchemy.engine import Connection

from sshtrail.dbtypes import NAMING_CONVENTION
from sshtrail.partitions import AHEAD, Month, months, partitioned

log = logging.getLogger(__name__)

TABLE = "search_docs"
#: Months made before the current one when the index is made (a rebuild reindexes
#: the sessions the store keeps; older ones go to the DEFAULT partition).
BEHIND = 12

_ID = Sequence("search_docs_id_seq")


def partitioned_like(docs: Table) -> Table:
    """``docs`` (``search.DOCS``) as PostgreSQL holds it partitioned: the same columns,
    names and indexes, taken from it, but no primary key on ``id`` (a unique key must
    hold the partition key; ``id`` orders ties and numbers the rows for SQLite's
    full-text table only)."""
    columns = [Column("id", Integer, _ID, server_default=_ID.next_value(), nullable=False)]
    columns += [column._copy() for column in docs.columns if column.name != "id"]
    unique = [
        UniqueConstraint(*(column.name for column in constraint.columns))
        for constraint in docs.constraints
        if isinstance(constraint, UniqueConstraint)
    ]
    indexes = [Index(None, *(column.name for column in index.columns)) for index in docs.indexes]
    return Table(
        TABLE,
        MetaData(naming_convention=NAMING_CONVENTION),
        *columns,
        *unique,
        *indexes,
        postgresql_partition_by="RANGE (session_id)",
    )


def create(conn: Connection, now: dt.datetime, docs: Table) -> None:
    """Make the partitioned ``search_docs``, its DEFAULT partition and its months from
    :data:`BEHIND` before ``now`` to ``AHEAD`` after (PostgreSQL; the table missing)."""
    partitioned_like(docs).metadata.create_all(conn)
    conn.execute(text(f"ALTER SEQUENCE {_ID.name} OWNED BY {TABLE}.id"))
    conn.execute(text(f"CREATE TABLE {TABLE}_default PARTITION OF {TABLE} DEFAULT"))
    _sample_text(conn, TABLE)  # the parent and DEFAULT; each month as it is made
    start = Month.of(now)
    for _ in range(BEHIND):
        start = _previous(start)
    ensure_months(conn, start.start, ahead=BEHIND + AHEAD)


def ensure_months(conn: Connection, at: dt.datetime, ahead: int = AHEAD) -> list[str]:
    """Make the partitions of ``at``'s month and the ``ahead`` after it that are
    missing; the names made. Nothing on SQLite or an unpartitioned index."""
    if not partitioned(conn, TABLE):
        return []
    _lock(conn)
    have = set(months(conn, TABLE))
    month, made = Month.of(at), []
    for _ in range(ahead + 1):
        if month not in have:
            if _in_default(conn, month):
                log.warning("index partitions: %s not made: DEFAULT holds rows of it", month)
            else:
                conn.execute(
                    text(
                        f"CREATE TABLE {month.name(TABLE)} PARTITION OF {TABLE} "
                        f"FOR VALUES FROM ('{month.low}') TO ('{month.high}')"
                    )
                )
                _sample_text(conn, month.name(TABLE))
                made.append(month.name(TABLE))
        month = month.next()
    if made:
        log.info("index partitions: made %s", ", ".join(made))
    return made


def month_of(session_id: uuid.UUID) -> Month | None:
    """The month a session started in, from its UUIDv7 (None for another id)."""
    if session_id.version != 7:
        return None
    return Month.of(dt.datetime.fromtimestamp((session_id.int >> 80) / 1000, dt.UTC))


def with_partition(conn: Connection, ids: list[uuid.UUID]) -> list[Month]:
    """The months of ``ids`` that have a partition, oldest first (none on SQLite or an
    unpartitioned index). Takes the members' lock: the caller may drop them."""
    if not partitioned(conn, TABLE):
        return []
    _lock(conn)
    wanted = {month_of(sid) for sid in ids}
    return [month for month in months(conn, TABLE) if month in wanted]


def sessions_of(conn: Connection, month: Month) -> set[uuid.UUID]:
    """Every session the index holds of ``month``: with documents in its partition, or
    a row in ``search_sessions``."""
    found = conn.execute(
        text(
            f"SELECT DISTINCT session_id FROM {month.name(TABLE)} "  # noqa: S608 -- ours
            "UNION SELECT session_id FROM search_sessions "
            "WHERE session_id >= :low AND session_id < :high"
        ),
        {"low": month.low, "high": month.high},
    )
    return set(found.scalars())


def drop(conn: Connection, month: Month) -> None:
    """Detach and drop ``month``'s partition: its documents go at once. A later
    document of that month (none is expected: its sessions are deleted) goes to
    DEFAULT."""
    name = month.name(TABLE)
    conn.execute(text(f"ALTER TABLE {TABLE} DETACH PARTITION {name}"))
    conn.execute(text(f"DROP TABLE {name}"))
    log.info("index partitions: %s detached and dropped", month)


#: Lines of ``text`` ANALYZE samples for the planner's histogram, over PostgreSQL's 100:
#: it judges ``ILIKE '%word%'`` by the share of the histogram's bounds holding the
#: word, and 101 bounds of a month missed a word one line in 20 holds (estimated
#: rare, read through the trigram index: 49 ms instead of 3 ms for a week;
#: docs/performance.md). ANALYZE of a month of 850,000 lines: 1.8 s instead of 0.25,
#: and every search plans ~3 ms longer (1,001 bounds tested in each partition).
TEXT_STATISTICS = 1000


def _sample_text(conn: Connection, table: str) -> None:
    conn.execute(text(f"ALTER TABLE {table} ALTER COLUMN text SET STATISTICS {TEXT_STATISTICS}"))


def _lock(conn: Connection) -> None:
    """Members making or dropping months at once take turns (the lock
    ``search.ensure_schema`` takes, held to the end of the transaction)."""
    conn.execute(text("SELECT pg_advisory_xact_lock(7421)"))


def _in_default(conn: Connection, month: Month) -> bool:
    found = conn.execute(
        text(
            f"SELECT 1 FROM {TABLE}_default "  # noqa: S608 -- names are ours
            "WHERE session_id >= :low AND session_id < :high LIMIT 1"
        ),
        {"low": month.low, "high": month.high},
    ).first()
    return found is not None


def _previous(month: Month) -> Month:
    return Month(month.year - (month.month == 1), (month.month - 2) % 12 + 1)
