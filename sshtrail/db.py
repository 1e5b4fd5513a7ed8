"""Database engines for SQLite (embedded default) and PostgreSQL."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, OperationalError, ProgrammingError

from sshtrail.errors import ConfigError, NotSetUp

#: How long a SQLite writer waits for another one before failing, in ms.
SQLITE_BUSY_TIMEOUT_MS = 10_000


def normalize_url(url: str) -> URL:
    """Parse a database URL; plain ``postgresql://`` means the psycopg 3 driver."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise ConfigError(f"{redacted(url)!r} is not a database URL", key="database.url") from None
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.get_backend_name() not in ("sqlite", "postgresql"):
        raise ConfigError(
            f"unsupported database {parsed.get_backend_name()!r}: use sqlite or postgresql",
            key="database.url",
        )
    return parsed


def shown_url(url: str) -> str:
    """A database URL to print: password hidden, a SQLite path made absolute."""
    try:
        parsed = normalize_url(url)
    except ConfigError:
        return redacted(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database:
        parsed = parsed.set(database=str(Path(parsed.database).resolve()))  # where it really is
    return parsed.render_as_string(hide_password=True)


def redacted(text: str) -> str:
    """``text`` with the password of any URL in it hidden (``user:***@host``)."""
    return _PASSWORD.sub(r"\1***@", text)


_PASSWORD = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*://[^:/@\s]*:)[^@\s]+@")


def make_engine(url: str, *, pre_ping: bool = True, **kwargs: Any) -> Engine:
    """An engine with sshtrail's connection settings applied.

    SQLite: the file's folder is created, WAL journal (readers never block the
    writer), foreign keys on, and a busy timeout so concurrent processes wait
    instead of failing. Statement parameters (session bytes, which may hold
    secrets) never appear in error messages or logs. PostgreSQL: each
    connection is tested before use (``pre_ping``), unless the caller retries
    failed work anyway -- the consumer groups do, and a round trip per batch
    is measurable there (docs/performance.md); SQLAlchemy drops a connection
    that failed with a disconnect either way.
    """
    kwargs.setdefault("hide_parameters", True)
    parsed = normalize_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(parsed, **kwargs)
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(parsed, pool_pre_ping=pre_ping, **kwargs)


def existing_engine(url: str, what: str) -> Engine:
    """An engine on a database that must exist already: what reading commands use, so
    that run in the wrong folder they say where they looked instead of creating an
    empty database there. :class:`~sshtrail.errors.NotSetUp` if a SQLite file is
    missing."""
    parsed = normalize_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        path = Path(parsed.database).expanduser()
        if not path.is_file():
            raise NotSetUp(
                f"no {what} at {path.resolve()}: state_dir is ./sshtrail-data of the current "
                "folder unless set; run where 'sshtrail up' ran, or point at it with "
                "--config FILE, SSHTRAIL_CONFIG=FILE or SSHTRAIL_STATE_DIR=DIR"
            )
    return make_engine(url)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    finally:
        cursor.close()


@contextmanager
def reading(engine: Engine, failed: Callable[[str, bool], Exception]) -> Iterator[Connection]:
    """A connection to read on, closed after. A database that cannot be reached, or read
    (a table missing: not migrated), raises ``failed(why, opening)`` -- the reader's own
    clear error (a command's, a web page's) -- instead of SQLAlchemy's."""
    try:
        conn = engine.connect()
    except OperationalError as exc:
        raise failed(str(exc.orig).strip(), True) from None
    try:
        yield conn
    except (OperationalError, ProgrammingError) as exc:
        raise failed(str(exc.orig).strip(), False) from None
    finally:
        conn.close()
