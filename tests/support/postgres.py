"""A throw-away PostgreSQL database on the machine's server, one per test run."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg

from tests.support.knobs import knob
from tests.support.services import unavailable

ADMIN_URL = knob("POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")


def create_database() -> str:
    """Create a uniquely named database and return its SQLAlchemy URL.

    Raises ``psycopg.OperationalError`` when no server answers.
    """
    name = f"sshtrail_test_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(ADMIN_URL, autocommit=True, connect_timeout=3) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base, _, _ = ADMIN_URL.rpartition("/")
    return f"{base}/{name}"


def drop_database(url: str) -> None:
    name = url.rpartition("/")[2]
    with psycopg.connect(ADMIN_URL, autocommit=True, connect_timeout=3) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def fresh_database() -> Iterator[str]:
    """A database of its own for the block, dropped after it: the URL. Skipped with the
    reason where no server answers (failed in CI: tests.support.services.unavailable)."""
    try:
        url = create_database()
    except psycopg.OperationalError as exc:
        unavailable(f"PostgreSQL at {ADMIN_URL} is not available: {exc}")
    try:
        yield url
    finally:
        drop_database(url)
