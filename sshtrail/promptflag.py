"""The ``uncertain-prompt`` flag: its rule, kept by the index group, and the store's
session listings joined with it (``sessions``, the console's sessions list).

Whether a command's prompt could be told apart from it is known only to the
terminal reader (:mod:`sshtrail.terminal`), which runs in the index group: running
it in the store group as well would double the cost of every terminal session for
one flag (docs/decisions.md, "The uncertain-prompt flag"). So the index keeps, per
session, whether its rule (:mod:`sshtrail.promptrun`) holds
(``search_sessions.uncertain_prompt``), and a listing of sessions from the store
looks the flagged ids up in the index first, then filters and marks the rows.

When the index cannot be read -- none was made yet, its database does not answer,
or it is older than this flag -- the flag is *unknown*: the rows are listed with
the store's flags only, :attr:`Listed.unknown` says why, and the caller says so. It
never stops a listing.
"""

from __future__ import annotations

import dataclasses
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Connection
from sqlalchemy.exc import OperationalError, ProgrammingError

from sshtrail import queries
from sshtrail.errors import DatabaseError, NotSetUp
from sshtrail.search import SESSIONS, Opener
from sshtrail.states import SessionFlag, joined_flags, split_flags

#: What reading the index may fail with: the flag is then unknown, not an error.
UNREADABLE = (NotSetUp, DatabaseError, OperationalError, ProgrammingError)


def flagged_ids(conn: Connection) -> frozenset[uuid.UUID]:
    """The sessions the index flags ``uncertain-prompt`` (few: a partial index finds them)."""
    found = conn.execute(select(SESSIONS.c.session_id).where(SESSIONS.c.uncertain_prompt))
    return frozenset(found.scalars())


def session_flagged(index: Opener, session_id: uuid.UUID) -> bool | None:
    """Whether the index flags one session ``uncertain-prompt``; None when unknown."""
    try:
        with index() as conn:
            found = conn.execute(
                select(SESSIONS.c.uncertain_prompt).where(SESSIONS.c.session_id == session_id)
            ).scalar()
    except UNREADABLE:
        return None
    return None if found is None else bool(found)


def with_flag(row: dict[str, Any], flagged: bool) -> dict[str, Any]:
    """``row`` of ``sessions`` with ``uncertain-prompt`` among its ``flags`` if ``flagged``."""
    if not flagged:
        return row
    names = [*split_flags(row["flags"]), SessionFlag.UNCERTAIN_PROMPT.value]
    return {**row, "flags": joined_flags(names)}


@dataclass(frozen=True, slots=True)
class Listed:
    """Sessions of the store, their flags joined with the index's; why the index's
    flag is unknown (it could not be read), or None."""

    rows: list[dict[str, Any]]
    unknown: Exception | None = None


def list_sessions(store: Connection, wanted: queries.SessionFilter, index: Opener) -> Listed:
    """:func:`sshtrail.queries.list_sessions` with the index's ``uncertain-prompt``: one
    answer for ``sshtrail sessions`` and the console. ``--flag uncertain-prompt`` lists
    only the sessions the index flags (none when it is unknown), ``any`` those too."""
    unknown: Exception | None = None
    try:
        with index() as conn:
            ids = flagged_ids(conn)
    except UNREADABLE as exc:
        ids, unknown = frozenset(), exc
    rows = queries.list_sessions(store, dataclasses.replace(wanted, index_flagged=ids))
    return Listed([with_flag(row, row["id"] in ids) for row in rows], unknown)
