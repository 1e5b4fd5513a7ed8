"""A connection to the store for the auditor commands; what cannot be read is a clear error."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine

from sshtrail import queries
from sshtrail.db import existing_engine, reading, shown_url
from sshtrail.errors import DatabaseError, InvalidError
from sshtrail.settings import Settings


class _Database:
    """A connection to one of the databases; one that cannot be read is a clear error
    naming it (``what``) and what usually helps (``hint``)."""

    def __init__(self, url: str, what: str, hint: str) -> None:
        self._engine: Engine = existing_engine(url, what)
        self._what, self._hint = f"{what} at {shown_url(url)}", hint

    def __enter__(self) -> Any:
        self._reading = reading(self._engine, self._failed)
        try:
            return self._reading.__enter__()
        except DatabaseError:
            self._engine.dispose()
            raise

    def __exit__(self, *exc: Any) -> None:
        try:
            self._reading.__exit__(*exc)
        finally:
            self._engine.dispose()

    def _failed(self, why: str, opening: bool) -> DatabaseError:
        if opening:
            return DatabaseError(f"cannot open the {self._what}: {why}")
        return DatabaseError(f"cannot read the {self._what} ({why}); {self._hint}")


class store(_Database):
    """A connection to the store; a database that cannot be read is a clear error."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings.database_url, "store", "is it migrated? sshtrail db upgrade")


def stored_session(settings: Settings, prefix: str) -> list[tuple[int, bytes]]:
    """The stored chunks of the session ``prefix`` names; an error if it has none."""
    with store(settings) as conn:
        session_id = queries.resolve(conn, prefix)
        stored = queries.stored_chunks(conn, session_id)
    if not stored:
        raise InvalidError(f"session {session_id} has no stored chunks")
    return stored


class index(_Database):
    """A connection to the search index; one that cannot be read is a clear error."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(
            settings.search_url, "search index", "has the index group run? sshtrail index"
        )
