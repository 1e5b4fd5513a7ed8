"""Alembic environment: the models' metadata, sshtrail's engine, safe timeouts."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection, text
from sqlalchemy.pool import NullPool

from sshtrail import migrate
from sshtrail.db import make_engine, normalize_url
from sshtrail.models import Base
from sshtrail.settings import load_settings

config = context.config
target_metadata = Base.metadata


def _database_url() -> str:
    url = context.get_x_argument(as_dictionary=True).get("url")
    url = url or config.get_main_option("sqlalchemy.url")
    return url or load_settings().database_url


def _configure(connection: Connection) -> None:
    sqlite = connection.dialect.name == "sqlite"
    if not sqlite:
        # Fail fast rather than queue behind a long transaction holding a lock,
        # which would in turn block every reader queued behind the migration.
        connection.execute(text("SET lock_timeout = '5s'"))
        connection.execute(text("SET statement_timeout = '10min'"))
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=sqlite,  # SQLite alters tables by copying them
        compare_type=True,
        include_name=migrate.include_name,
        include_object=migrate.include_object(connection.dialect.name),
        transaction_per_migration=True,
    )


def run_migrations_offline() -> None:
    context.configure(
        url=normalize_url(_database_url()),
        target_metadata=target_metadata,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:  # handed in by sshtrail.migrate
        _configure(connection)
        context.run_migrations()
        return
    engine = make_engine(_database_url(), poolclass=NullPool)
    with migrate.migrating(engine) as connection:  # SQLite: foreign keys off, then checked
        _configure(connection)
        context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
