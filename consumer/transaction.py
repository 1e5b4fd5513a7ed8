"""A database transaction whose failures reach the runner classified.

A data or integrity error (a value the column cannot hold, a constraint the
row breaks) is the fault of what is being written: retrying it would stall
the group for good, so it becomes an :class:`~sshtrail.errors.UnstorableError`
and the runner quarantines the chunks at fault. Every other failure (the
database away, a deadlock, a timeout, a missing table) is the system's and
becomes a retryable :class:`~sshtrail.errors.DatabaseError`.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from typing import Any

from sqlalchemy import ColumnElement, Engine, RowMapping, select
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Connection

from sshtrail.errors import DatabaseError, UnstorableError


class Transaction:
    """``engine.begin()`` with the database's errors translated for the runner."""

    def __init__(self, engine: Engine, what: str) -> None:
        self._engine = engine
        self._what = what
        self._context: Any = None

    def __enter__(self) -> Connection:
        try:
            self._context = self._engine.begin()
            conn: Connection = self._context.__enter__()
        except (sa_exc.DBAPIError, sa_exc.TimeoutError) as exc:
            raise _database_error(self._what, exc) from None
        return conn

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, traceback: Any
    ) -> None:
        try:
            self._context.__exit__(kind, value, traceback)
        except (sa_exc.DBAPIError, sa_exc.TimeoutError) as exc:
            raise _database_error(self._what, exc) from None
        if isinstance(value, sa_exc.DBAPIError | sa_exc.TimeoutError):
            raise _database_error(self._what, value) from None


def _database_error(what: str, exc: Exception) -> DatabaseError | UnstorableError:
    detail = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
    if isinstance(exc, sa_exc.DataError | sa_exc.IntegrityError):
        return UnstorableError(f"the database refused the data ({what}): {detail}")
    # Retried without limit: a stalled group loses nothing, a skipped batch would.
    return DatabaseError(f"database {what} failed: {type(exc).__name__}: {detail}")


#: Keys per ``IN (...)`` list, far below either engine's parameter limit.
IN_LIST = 500


def locked_rows(
    conn: Connection, columns: Sequence[Any], key: ColumnElement[uuid.UUID], ids: list[uuid.UUID]
) -> Iterator[RowMapping]:
    """Rows whose ``key`` is one of ``ids``, locked ``FOR UPDATE`` on PostgreSQL
    (SQLite has one writer at a time), a slice of ids per statement."""
    postgres = conn.dialect.name == "postgresql"
    for start in range(0, len(ids), IN_LIST):
        query = select(*columns).where(key.in_(ids[start : start + IN_LIST]))
        if postgres:
            query = query.with_for_update()
        yield from conn.execute(query).mappings()
