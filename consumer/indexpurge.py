"""The index group's side of retention: the search documents of deleted sessions go.

The store's tombstones (``deletions``, consumer/deletion.py) say what was deleted.
At most every ``retention.check_s`` seconds, between batches, a member reads the
tombstones written since it last looked (a few minutes' overlap, for transactions
that committed late) and, in the index, deletes each one's documents and backlog
and marks its ``search_sessions`` row ended with the deletion as its reason -- so
its chunks read again (a reprocess of their offsets) index nothing: the tombstone
wins here as in the store. The store being away only delays this; indexing goes on.
On PostgreSQL each look also makes the index's months ahead, and a month whose every
session the index holds has a tombstone loses its partition of documents whole
(sshtrail/searchmonths.py) instead of row by row.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
import uuid
from collections.abc import Callable, Sequence

from sqlalchemy import Engine, delete, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from consumer.transaction import Transaction
from sshtrail import searchmonths
from sshtrail.errors import DatabaseError
from sshtrail.partitions import Month
from sshtrail.search import BACKLOG, DOCS, SESSIONS
from sshtrail.tables import DELETIONS

log = logging.getLogger(__name__)

#: How far back each look starts before the last tombstone seen.
OVERLAP = dt.timedelta(minutes=5)
#: Tombstones read per look.
PAGE = 500
#: How long a month found with sessions not deleted waits before it is looked at again.
MONTH_RECHECK_S = 3600.0
#: What the index says of a deleted session (``search_sessions.quarantine_reason``).
DELETED = "deleted (sshtrail deletions): its documents were removed"


class IndexPurge:
    """Removes deleted sessions from the index; see the module docstring."""

    def __init__(self, store: Engine, check_s: float) -> None:
        self._store = store
        self._check_s = check_s
        self._next_look = 0.0
        #: The newest deletion seen: each look starts ``OVERLAP`` before it.
        self._latest: dt.datetime | None = None
        #: Within a look of several pages, the last tombstone read (time, id).
        self._cursor: tuple[dt.datetime, uuid.UUID] | None = None
        #: Months found with sessions not deleted: when to look at each again.
        self._kept_months: dict[Month, float] = {}

    def run(self, index: Engine, forget: Callable[[list[uuid.UUID]], None]) -> bool:
        """Purge what was deleted since the last look; whether more tombstones wait.
        ``forget`` drops the sessions from the writer's memory."""
        if self._cursor is None:
            if time.monotonic() < self._next_look:
                return False
            with Transaction(index, "index partitions") as conn:
                searchmonths.ensure_months(conn, dt.datetime.now(dt.UTC))
            if self._latest is not None:
                self._cursor = (self._latest - OVERLAP, uuid.UUID(int=0))
        try:
            found = self._tombstones(self._cursor)
        except DatabaseError as exc:  # the store away: the index goes on, this waits
            log.warning("index: tombstones not read, purge later: %s", exc)
            self._cursor = None
            self._next_look = time.monotonic() + self._check_s
            return False
        if found:
            ids = [sid for sid, _ in found]
            with Transaction(index, "index purge") as conn:
                purge(conn, ids, self._whole_months(conn, ids))
            forget(ids)
            log.info("index: %d deleted sessions removed from the index", len(ids))
            last_id, last_at = found[-1]
            self._cursor = (last_at, last_id)
            self._latest = max(last_at, self._latest or last_at)
        if len(found) == PAGE:
            return True
        self._cursor = None
        self._next_look = time.monotonic() + self._check_s
        return False

    def _whole_months(self, conn: Connection, ids: list[uuid.UUID]) -> list[Month]:
        """The months of ``ids`` whose partition can go whole; a month found otherwise
        is looked at again only after :data:`MONTH_RECHECK_S` (its sessions' rows are
        deleted meanwhile), so sessions expiring one by one do not cost a scan of
        their month's documents at every look."""
        whole = []
        for month in searchmonths.with_partition(conn, ids):
            if self._kept_months.get(month, 0.0) > time.monotonic():
                continue
            if self._all_deleted(conn, month):
                whole.append(month)
                self._kept_months.pop(month, None)
            else:
                self._kept_months[month] = time.monotonic() + MONTH_RECHECK_S
        return whole

    def _all_deleted(self, conn: Connection, month: Month) -> bool:
        """Whether every session of ``month`` the index holds has a tombstone. The store's
        retention writes a whole month's tombstones in one transaction when it drops the
        month (consumer/deletion.py, ``drop_month``): the first page of them finds
        them all, and the partition goes whole."""
        held = searchmonths.sessions_of(conn, month)
        in_month = (DELETIONS.c.session_id >= month.low) & (DELETIONS.c.session_id < month.high)
        with Transaction(self._store, "tombstones read") as store:
            gone = set(store.execute(select(DELETIONS.c.session_id).where(in_month)).scalars())
        return held <= gone

    def _tombstones(
        self, cursor: tuple[dt.datetime, uuid.UUID] | None
    ) -> list[tuple[uuid.UUID, dt.datetime]]:
        """A page of tombstones after ``cursor`` (all from the first, without one)."""
        query = select(DELETIONS.c.session_id, DELETIONS.c.deleted_at)
        if cursor is not None:
            at, after = cursor
            query = query.where(
                (DELETIONS.c.deleted_at > at)
                | ((DELETIONS.c.deleted_at == at) & (DELETIONS.c.session_id > after))
            )
        query = query.order_by(DELETIONS.c.deleted_at, DELETIONS.c.session_id).limit(PAGE)
        with Transaction(self._store, "tombstones read") as conn:
            return [(sid, at) for sid, at in conn.execute(query)]


def purge(conn: Connection, ids: list[uuid.UUID], whole: Sequence[Month] = ()) -> None:
    """Delete the sessions' documents and backlog; mark them ended as deleted. The
    ``whole`` months, every session of which is deleted, lose their partition of
    documents at once, and all their sessions are marked so (sshtrail/searchmonths.py)."""
    insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    for month in whole:
        searchmonths.drop(conn, month)
        in_month = (SESSIONS.c.session_id >= month.low) & (SESSIONS.c.session_id < month.high)
        conn.execute(update(SESSIONS).where(in_month).values(ended=True, quarantine_reason=DELETED))
        in_backlog = (BACKLOG.c.session_id >= month.low) & (BACKLOG.c.session_id < month.high)
        conn.execute(delete(BACKLOG).where(in_backlog))
    rest = [sid for sid in ids if searchmonths.month_of(sid) not in whole]
    for table in (DOCS, BACKLOG):
        conn.execute(delete(table).where(table.c.session_id.in_(rest)))
    statement = insert(SESSIONS).values(
        [
            {"session_id": sid, "next_seq": 0, "ended": True, "quarantine_reason": DELETED}
            for sid in ids
        ]
    )
    conn.execute(
        statement.on_conflict_do_update(
            index_elements=["session_id"],
            set_={"ended": True, "quarantine_reason": DELETED},
        )
    )
