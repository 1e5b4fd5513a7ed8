"""What the console's pages share: the store read within the auditor's scope, and
the query parameters read without trusting them."""

from __future__ import annotations

import datetime as dt
import uuid
from contextlib import AbstractContextManager
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.exc import NoResultFound, OperationalError, ProgrammingError
from starlette.exceptions import HTTPException
from starlette.requests import HTTPConnection, Request

from consumer.web.auth import Auditor
from consumer.web.console import Console
from sshtrail import queries
from sshtrail.db import reading
from sshtrail.errors import NotSetUp
from sshtrail.search import Hit
from sshtrail.search import commands as indexed_commands
from sshtrail.timespec import moment


def local_path(target: str) -> str:
    """Where to go after signing in: a path of this console, never another site."""
    if not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/sessions"
    return target


class Page:
    """What every page of the console is built on: the console, and the store read in
    scope."""

    def __init__(self, console: Console) -> None:
        self.console = console

    def _store(self) -> AbstractContextManager[Connection]:
        """A store connection for one answer; a store that cannot be read is a 503 page."""
        return reading(self.console.store, store_unreadable)

    def _in_scope(self, conn: Connection, request: HTTPConnection) -> dict[str, Any]:
        """The session the path names, if the auditor may see it; 404 otherwise."""
        auditor: Auditor = request.state.auditor
        try:
            session_id = uuid.UUID(request.path_params["sid"])
        except ValueError:
            raise HTTPException(404, "no such session") from None
        try:
            row = queries.session(conn, session_id)
        except NoResultFound:
            raise HTTPException(404, "no such session") from None
        if not auditor.scope.allows(row["operator"], row["target"]):
            self.console.log(request, "denied", session_id=session_id, detail="out of scope")
            raise HTTPException(404, "no such session")
        return row

    def _commands(self, session_id: uuid.UUID) -> list[Hit] | None:
        """The session's commands from the index; None when the index cannot be read."""
        try:
            with self.console.search_engine().connect() as conn:
                return indexed_commands(conn, session_id)
        except (NotSetUp, OperationalError, ProgrammingError):
            return None


def skip_chunk(seq: int, why: str) -> None:
    """A chunk that does not decode is left out of the player and downloads (as from
    ``sshtrail export``); ``verify`` and the session page say what is wrong."""


def read_params(request: Request, *names: str) -> dict[str, str]:
    return {name: request.query_params.get(name, "")[:256] for name in names}


def log_detail(params: dict[str, str], page: int) -> str:
    shown = " ".join(f"{k}={v!r}" for k, v in params.items() if v)
    return shown + (f" page={page}" if page > 1 else "")


def read_moment(text: str, name: str, problems: list[str]) -> dt.datetime | None:
    if not text.strip():
        return None
    try:
        return moment(text)
    except ValueError as exc:
        problems.append(f"{name}: {exc}")
        return None


def check_one_of(name: str, value: str, allowed: tuple[str, ...], problems: list[str]) -> None:
    """A filter's value, if given, must be one of ``allowed``; else a problem says so."""
    if value and value not in allowed:
        problems.append(f"{name}: one of {', '.join(allowed)}")


def read_number(text: str | None, default: int, low: int, high: int) -> int:
    try:
        return min(max(int(text or default), low), high)
    except ValueError:
        return default


def read_seconds(text: str | None) -> float:
    try:
        value = float(text or 0)
    except ValueError:
        return 0.0
    return value if 0 <= value < 1e9 else 0.0


def read_choice(text: str | None, allowed: tuple[str, ...], default: str) -> str:
    return text if text in allowed else default


def store_unreadable(why: str, _opening: bool) -> HTTPException:
    return HTTPException(503, f"the store cannot be read: {why}")
