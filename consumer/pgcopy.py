"""PostgreSQL's fast path for the store: chunks arrive by binary COPY into a staging table.

A multi-row ``INSERT`` of a few thousand 1 KiB rows spends most of its time
building and parsing one enormous statement; ``COPY`` streams the rows
instead. From the staging table one ``INSERT ... SELECT ... ON CONFLICT DO
NOTHING RETURNING`` keeps the writes idempotent exactly as on SQLite.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

import psycopg
from sqlalchemy import Engine, Uuid, column, event, literal, select, table
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects import postgresql
from sqlalchemy.dialects.postgresql import Insert
from sqlalchemy.engine import Connection

from consumer.chunkrow import CHUNK_COLUMNS, chunk_values
from consumer.messages import Received
from consumer.sessionrow import SESSIONS, new_session_values

_STAGED = "sshtrail_chunks_stage"  # in the DBAPI connection's info: the table exists

#: PostgreSQL's types of :data:`CHUNK_COLUMNS`, for the binary COPY.
_TYPES = ("uuid", "int8", "int8", "int8", "int4", "int8", "bytea", "timestamptz")
_LIST = ", ".join(f'"{name}"' for name in CHUNK_COLUMNS)

# Temporary: private to the connection, emptied at every commit and gone with a
# rollback of the transaction that created it.
_STAGE = """
CREATE TEMPORARY TABLE IF NOT EXISTS chunks_stage
  (LIKE chunks INCLUDING DEFAULTS) ON COMMIT DELETE ROWS
"""


def _new_sessions() -> Insert:
    """A row for every session of the staged chunks that has none yet, with the values
    of :func:`~consumer.sessionrow.new_session_values`. The NULLs are left to the
    columns' own default, NULL: an untyped NULL in a SELECT list is taken for text."""
    values = {name: v for name, v in new_session_values().items() if v is not None}
    stage = table("chunks_stage", column("session_id", Uuid()))
    touched = select(stage.c.session_id).distinct().subquery("touched")
    rows = select(
        touched.c.session_id, *(literal(v, SESSIONS.c[name].type) for name, v in values.items())
    )
    return (
        postgresql.insert(SESSIONS)
        .from_select(["id", *values], rows)
        .on_conflict_do_nothing(index_elements=["id"])
    )


_SESSIONS = _new_sessions()

# Built from the constant column names above, never from input.
_CHUNKS = f"""
INSERT INTO chunks ({_LIST}) SELECT {_LIST} FROM chunks_stage
ON CONFLICT (session_id, seq) DO NOTHING RETURNING session_id, seq
"""  # noqa: S608


def copy_chunks(conn: Connection, chunks: Sequence[Received]) -> set[tuple[uuid.UUID, int]]:
    """Insert ``chunks`` (and empty rows for new sessions); returns the keys that were new.

    This goes around SQLAlchemy, so what PostgreSQL refuses of the data is raised as
    SQLAlchemy would have raised it: the store's transaction then tells the chunks'
    fault (quarantined) from the database's (retried), as for its other statements.
    """
    try:
        return _copy(conn, chunks)
    except (psycopg.DataError, psycopg.IntegrityError) as exc:
        raise sa_exc.DBAPIError.instance(
            "COPY chunks_stage / INSERT INTO chunks", None, exc, psycopg.Error
        ) from None


def _copy(conn: Connection, chunks: Sequence[Received]) -> set[tuple[uuid.UUID, int]]:
    raw: Any = conn.connection.driver_connection  # psycopg.Connection, same transaction
    info = conn.connection.info  # lives as long as the database connection
    with raw.cursor() as cursor:
        if not info.get(_STAGED):
            cursor.execute(_STAGE)
            info[_STAGED] = True  # until a rollback (see track_staging_table)
        with cursor.copy(f"COPY chunks_stage ({_LIST}) FROM STDIN (FORMAT BINARY)") as copy:
            copy.set_types(_TYPES)
            for r in chunks:
                copy.write_row(chunk_values(r))
        conn.execute(_SESSIONS)  # SQLAlchemy's: it types the values for PostgreSQL
        cursor.execute(_CHUNKS)
        return {(sid, seq) for sid, seq in cursor.fetchall()}


def track_staging_table(engine: Engine) -> None:
    """Create the staging table once per connection, not once per batch.

    It is created inside a batch's transaction, so a rollback of that
    transaction takes it away again: forget it then, and the next batch
    creates it anew. (Its rows need no care: a commit empties the table, a
    rollback undoes the COPY.) A connection the server ended is dropped by the
    pool, its info with it.
    """

    def rolled_back(conn: Connection) -> None:
        # An invalidated connection (the server ended it) is gone with its table, and
        # the pool clears its info; touching it here would raise instead of rolling back.
        if not conn.invalidated:
            conn.connection.info.pop(_STAGED, None)

    event.listen(engine, "rollback", rolled_back)
