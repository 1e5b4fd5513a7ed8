"""Run the Alembic migrations in ``migrations/`` against a database URL."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine
from sqlalchemy.exc import OperationalError
from sqlalchemy.pool import NullPool

import migrations
from sshtrail.db import make_engine
from sshtrail.errors import DatabaseError
from sshtrail.models import Base


def alembic_config(url: str) -> Config:
    """An Alembic config for ``url`` that finds the migrations wherever installed."""
    config = Config()
    config.set_main_option("script_location", str(Path(migrations.__file__).parent))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def upgrade(url: str, revision: str = "head") -> None:
    _run(url, lambda config: command.upgrade(config, revision))


def downgrade(url: str, revision: str) -> None:
    _run(url, lambda config: command.downgrade(config, revision))


def current_revision(url: str) -> str | None:
    """The revision the database is at, ``None`` when it has never been migrated."""
    engine = make_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()
    except OperationalError as exc:
        raise DatabaseError(f"cannot reach the database: {exc.orig}") from None
    finally:
        engine.dispose()


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()
    assert head is not None, "migrations/versions is empty"
    return head


def include_name(name: str | None, kind: str, parents: Mapping[Any, str | None]) -> bool:
    """What Alembic compares: the store's tables, not the search index's (``search_*``),
    which manages its own schema and may share a PostgreSQL database with the store.
    Nor the copies of a foreign key PostgreSQL makes for each partition of a partitioned
    table it refers to (migration 0015): theirs are its names, never ``fk_...`` ones."""
    if kind == "foreign_key_constraint" and name and not name.startswith("fk_"):
        return False
    table = name if kind == "table" else parents.get("table_name")
    return not (table or "").startswith("search_")


def include_object(dialect: str) -> Callable[[Any, str | None, str, bool, Any], bool]:
    """What Alembic compares on a ``dialect`` database: not a model's index made on
    another database only (``sshtrail.models.postgresql_only``), which Alembic would
    otherwise ask to create here."""

    def include(obj: Any, name: str | None, kind: str, reflected: bool, other: Any) -> bool:
        if kind != "index" or reflected:
            return True
        only = obj.info.get("dialect")
        return only is None or only == dialect

    return include


def pending_model_changes(url: str) -> list[object]:
    """Differences between the models and the migrated schema (empty = no drift)."""
    engine = make_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(
                connection,
                opts={
                    "compare_type": True,
                    "include_name": include_name,
                    "include_object": include_object(connection.dialect.name),
                },
            )
            return list(compare_metadata(context, Base.metadata))
    finally:
        engine.dispose()


@contextmanager
def migrating(engine: Engine) -> Iterator[Connection]:
    """A connection in one transaction, to migrate on.

    SQLite alters a table by copying it and dropping the old one; with foreign keys on,
    dropping ``sessions`` deletes every chunk by cascade. So, as SQLite's documentation
    for schema changes asks, foreign keys are off while migrating and checked before
    the commit: a migration that leaves a dangling reference is rolled back.
    """
    with engine.connect() as connection:
        sqlite = connection.dialect.name == "sqlite"
        if sqlite:  # outside a transaction, or SQLite ignores it
            connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
            connection.commit()
        with connection.begin():
            yield connection
            if sqlite:
                dangling = connection.exec_driver_sql("PRAGMA foreign_key_check").all()
                if dangling:
                    raise DatabaseError(
                        f"migration rolled back: it left {len(dangling)} rows referring to "
                        f"rows that are not there (first: {tuple(dangling[0])})"
                    )


def _run(url: str, action: object) -> None:
    assert callable(action)
    config = alembic_config(url)
    engine = make_engine(url, poolclass=NullPool)
    try:
        with migrating(engine) as connection:
            config.attributes["connection"] = connection
            action(config)
    except OperationalError as exc:
        raise DatabaseError(f"migration failed: {exc.orig}") from None
    finally:
        engine.dispose()
