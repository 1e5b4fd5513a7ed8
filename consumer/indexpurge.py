"""The index group's side of retention: the search documents of deleted sessions go.

The store's tombstones (``deletions``, consumer/deletion.py) say what was deleted.
At most every ``retention.check_s`` seconds, between batches, a member reads the
tombstones written since it last looked (a few minutes' overlap, for transactions
that committed late) and, in the index, deletes each one's documents and backlog
and marks its ``search_sessions`` row ended with the deletion as its reason -- so
its chunks read again (a reprocess of their offsets) index nothing: the tombstone
wins here as in the store. The store being away only delays this; indexing goes on.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
import uuid
from collections.abc import Callable

from sqlalchemy import Engine, delete, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from consumer.transaction import Transaction
from sshtrail.errors import DatabaseError
from sshtrail.search import BACKLOG, DOCS, SESSIONS
from sshtrail.tables import DELETIONS

log = logging.getLogger(__name__)

#: How far back each look starts before the last tombstone seen.
OVERLAP = dt.timedelta(minutes=5)
#: Tombstones read per look.
PAGE = 500
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

    def run(self, index: Engine, forget: Callable[[list[uuid.UUID]], None]) -> bool:
        """Purge what was deleted since the last look; whether more tombstones wait.
        ``forget`` drops the sessions from the writer's memory."""
        if self._cursor is None:
            if time.monotonic() < self._next_look:
                return False
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
                purge(conn, ids)
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


def purge(conn: Connection, ids: list[uuid.UUID]) -> None:
    """Delete the sessions' documents and backlog; mark them ended as deleted."""
    insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    for table in (DOCS, BACKLOG):
        conn.execute(delete(table).where(table.c.session_id.in_(ids)))
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
