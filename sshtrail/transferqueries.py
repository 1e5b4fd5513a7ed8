"""The auditors' questions to the store about files: what moved or changed over SFTP and
SCP (``sshtrail transfers``, the console's files, search's file paths), and which stored
transfer a number names.

Apart from :mod:`sshtrail.queries` because a path filter is its own small language: a
shell pattern is narrowed in SQL by a LIKE every matching path matches (:func:`_like`)
and decided by :mod:`fnmatch` on the rows read, so the two stay together here.
"""

from __future__ import annotations

import datetime as dt
import fnmatch
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, or_, select
from sqlalchemy.engine import Connection

from sshtrail.errors import NotFound
from sshtrail.scope import Scope
from sshtrail.states import MaskedInput
from sshtrail.tables import SESSIONS, TRANSFERS

#: The operations that move a file's bytes (``export --transfer`` takes them out).
FILE_OPS = ("upload", "download", "read-write")
#: What ``sshtrail transfers`` lists without ``--all``: files that moved or changed.
#: The rest (stat, realpath, list, readlink, statvfs, fsync ...) is looking around.
CHANGES = (
    "upload",
    "download",
    "read-write",
    "open",
    "rename",
    "remove",
    "mkdir",
    "rmdir",
    "setstat",
    "symlink",
    "hardlink",
    "copy",
    "error",
)


@dataclass(frozen=True, slots=True)
class TransferFilter:
    operator: str | None = None
    target: str | None = None
    since: dt.datetime | None = None
    until: dt.datetime | None = None
    #: A shell-style pattern the path (or the new path of a rename) must match.
    path: str | None = None
    #: A case-insensitive substring of the path (or the new path): ``search``.
    containing: str | None = None
    session_id: uuid.UUID | None = None
    #: Every operation, not only :data:`CHANGES`.
    everything: bool = False
    limit: int = 100
    masked_input: MaskedInput | None = None
    exit_status: int | None = None
    scope: Scope | None = None


def list_transfers(conn: Connection, wanted: TransferFilter) -> list[dict[str, Any]]:
    """File operations with their session's operator, target and start, newest
    sessions first and each session's operations in order."""
    query = select(
        TRANSFERS,
        SESSIONS.c.operator,
        SESSIONS.c.target,
        SESSIONS.c.started_at,
    ).join(SESSIONS, SESSIONS.c.id == TRANSFERS.c.session_id)
    conditions = _transfer_conditions(wanted)
    if wanted.scope is not None and not wanted.scope.everything:
        allowed = wanted.scope.condition(conn.dialect.name, SESSIONS.c.operator, SESSIONS.c.target)
        conditions.append(allowed)
    query = query.where(*conditions).order_by(
        SESSIONS.c.started_at.desc(), TRANSFERS.c.session_id, TRANSFERS.c.idx
    )
    rows: list[dict[str, Any]] = []
    # A pattern with [classes] is only narrowed by LIKE: fnmatch decides, so read on.
    for row in conn.execute(query.execution_options(yield_per=500)).mappings():
        if wanted.path is None or _matches(wanted.path, row["path"], row["path2"]):
            rows.append(dict(row))
            if len(rows) >= wanted.limit:
                break
    return rows


@dataclass(frozen=True, slots=True)
class StoredTransfer:
    """Where a ``transfers`` row came from: its session, what it asked for, which one."""

    session_id: uuid.UUID
    request: str | None
    command: str | None
    index: int  # ``transfers.idx``
    path: str


def stored_transfer(conn: Connection, transfer_id: int) -> StoredTransfer:
    """Where transfer ``transfer_id`` (``sshtrail transfers`` column N) came from."""
    return _stored_transfer(conn, TRANSFERS.c.id == transfer_id, f"transfer {transfer_id}")


def session_transfer(conn: Connection, session_id: uuid.UUID, index: int) -> StoredTransfer:
    """Operation ``index`` (from 0) of one session, a file whose bytes moved: the console
    names a file by its session, so a number from another session finds nothing."""
    found = (TRANSFERS.c.session_id == session_id) & (TRANSFERS.c.idx == index)
    return _stored_transfer(conn, found, f"operation {index} of the session")


def _stored_transfer(conn: Connection, where: ColumnElement[bool], name: str) -> StoredTransfer:
    row = conn.execute(
        select(
            TRANSFERS.c.session_id,
            SESSIONS.c.request,
            SESSIONS.c.command,
            TRANSFERS.c.idx,
            TRANSFERS.c.path,
            TRANSFERS.c.op,
        )
        .join(SESSIONS, SESSIONS.c.id == TRANSFERS.c.session_id)
        .where(where)
    ).one_or_none()
    if row is None:
        raise NotFound(f"no {name} (sshtrail transfers lists them, column N)")
    if row.op not in FILE_OPS:
        raise NotFound(f"{name} is a {row.op}: no file's bytes moved")
    return StoredTransfer(row.session_id, row.request, row.command, row.idx, row.path)


def _transfer_conditions(wanted: TransferFilter) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = []
    if wanted.operator is not None:
        conditions.append(SESSIONS.c.operator == wanted.operator)
    if wanted.target is not None:
        conditions.append(SESSIONS.c.target == wanted.target)
    if wanted.since is not None:
        conditions.append(SESSIONS.c.started_at >= wanted.since)
    if wanted.until is not None:
        conditions.append(SESSIONS.c.started_at < wanted.until)
    if wanted.session_id is not None:
        conditions.append(TRANSFERS.c.session_id == wanted.session_id)
    if wanted.masked_input is not None:
        conditions.append(SESSIONS.c.masked_input.in_(wanted.masked_input.at_least()))
    if wanted.exit_status is not None:
        conditions.append(SESSIONS.c.exit_status == wanted.exit_status)
    if not wanted.everything:
        conditions.append(TRANSFERS.c.op.in_(CHANGES))
    if wanted.path is not None:
        like = _like(wanted.path)
        conditions.append(
            or_(
                TRANSFERS.c.path.like(like, escape="\\"),
                TRANSFERS.c.path2.like(like, escape="\\"),
            )
        )
    if wanted.containing is not None:
        like = "%" + escape_like(wanted.containing) + "%"
        conditions.append(
            or_(
                TRANSFERS.c.path.ilike(like, escape="\\"),
                TRANSFERS.c.path2.ilike(like, escape="\\"),
            )
        )
    return conditions


def _matches(pattern: str, path: str, path2: str | None) -> bool:
    return fnmatch.fnmatchcase(path, pattern) or (
        path2 is not None and fnmatch.fnmatchcase(path2, pattern)
    )


def escape_like(text: str) -> str:
    """``text`` for a LIKE pattern with ``escape="\\"``: its ``%`` and ``_`` literal."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _like(pattern: str) -> str:
    """A LIKE pattern (``escape="\\"``) that every path ``pattern`` (shell-style)
    matches, and few others: its literal text kept whole, so PostgreSQL's trigram
    indexes on ``path`` and ``path2`` (migration 0017) find the rows by it."""
    out = []
    i = 0
    while i < len(pattern):
        char = pattern[i]
        i += 1
        if char == "*":
            out.append("%")
        elif char == "?":
            out.append("_")
        elif char == "[" and (end := _class_end(pattern, i)) is not None:
            out.append("_")  # a class: any one character, fnmatch checks which
            i = end + 1
        else:
            out.append(escape_like(char))
    return "".join(out)


def _class_end(pattern: str, start: int) -> int | None:
    """Where the class opened just before ``start`` closes, as :mod:`fnmatch` reads
    it (a ``]`` first, or after ``!``, is a member); None: the ``[`` is literal."""
    i = start
    if i < len(pattern) and pattern[i] == "!":
        i += 1
    if i < len(pattern) and pattern[i] == "]":
        i += 1
    end = pattern.find("]", i)
    return end if end >= 0 else None
