"""The console's pages: sessions, a session with its player, search, downloads, admin pages.

Each handler runs in the thread pool, checks the session is in the auditor's
scope (out of scope is the same 404 as no such session), writes the access
log entry, then answers. Filters are the CLI's (:mod:`sshtrail.queries`,
:mod:`sshtrail.search`), with the auditor's scope added to every query.
"""

from __future__ import annotations

import datetime as dt
import secrets
import uuid
from collections.abc import Iterator
from contextlib import AbstractContextManager
from typing import Any

from markupsafe import Markup
from sqlalchemy import Connection
from sqlalchemy.exc import NoResultFound, OperationalError, ProgrammingError
from starlette.exceptions import HTTPException
from starlette.requests import HTTPConnection, Request
from starlette.responses import Response, StreamingResponse

from consumer.lag import LagReader, NoSuchGroup, PartitionLag
from consumer.requester import ask
from consumer.web import access, filters
from consumer.web.auth import Auditor
from consumer.web.console import Console
from sshtrail import control, interrupted, queries
from sshtrail.chain import Status
from sshtrail.db import reading
from sshtrail.describe import duration_text, exit_text, request_text, session_fields, signer_text
from sshtrail.errors import BrokerError, NotSetUp
from sshtrail.exports import Format, asciicast, chunk_events, export_lines
from sshtrail.search import Hit, Query, find
from sshtrail.search import commands as indexed_commands
from sshtrail.states import KINDS, SessionStatus
from sshtrail.timespec import moment
from sshtrail.verification import known_gateway_keys, session_verdicts

#: The statuses the sessions page filters by: the store's, and ``tampered`` (a
#: verification verdict, checked for the sessions whose stored word is not "ok").
STATUSES = (*(s.value for s in SessionStatus), "tampered")
#: Sessions looked through for ``tampered`` at most.
TAMPERED_SCAN = 5000
#: Hits a search page shows at most.
SEARCH_LIMIT = 200
#: Operations of one session the session page lists at most.
TRANSFERS_SHOWN = 500
EXPORTS: dict[str, tuple[Format, str, str]] = {
    "asciicast": ("asciicast", "application/x-asciicast", "cast"),
    "raw": ("raw", "application/octet-stream", "raw"),
    "json": ("json", "application/x-ndjson", "jsonl"),
}
#: Bytes the streamed recordings are sent in at least (fewer, larger writes).
PIECE = 64 << 10
SPEEDS = ("0.5", "1", "2", "4", "8")
IDLE_LIMITS = ("", "1", "2", "5", "30")


class Pages:
    def __init__(self, console: Console) -> None:
        self.console = console
        self._lag: LagReader | None = None

    # -- signing in ------------------------------------------------------------------

    def login_form(self, request: Request) -> Response:
        request.state.auditor = None
        request.state.signed = None
        wanted = request.query_params.get("next", "/sessions")
        return self.login_page(request, "", wanted, 200)

    def login_page(self, request: Request, message: str, wanted: str, status: int) -> Response:
        """The form, with a fresh double-submit token in its cookie and its field."""
        token = secrets.token_urlsafe(32)
        proxied = bool(self.console.proxies)
        response = self.console.render(
            request,
            "login.html",
            {"message": message, "next": wanted, "login_csrf": token, "proxied": proxied},
            status,
        )
        response.set_cookie(
            "sshtrail_login",
            token,
            max_age=3600,
            path="/login",
            secure=self.console.tls,
            httponly=True,
            samesite="strict",
        )
        return response

    # -- sessions ----------------------------------------------------------------------

    def sessions(self, request: Request) -> Response:
        auditor: Auditor = request.state.auditor
        params = _params(request, "operator", "target", "status", "since", "until", "sort", "order")
        page = _number(request.query_params.get("page"), 1, 1, 100_000)
        size = self.console.settings.web.page_size
        problems: list[str] = []
        since = _moment(params["since"], "since", problems)
        until = _moment(params["until"], "until", problems)
        status = params["status"]
        _one_of("status", status, STATUSES, problems)
        sort = params["sort"] or "started"
        _one_of("sort", sort, tuple(queries.SORTS), problems)
        rows: list[dict[str, Any]] = []
        verdicts: dict[uuid.UUID, Any] = {}
        more = False
        if not problems:
            tampered = status == "tampered"
            wanted = queries.SessionFilter(
                operator=params["operator"] or None,
                target=params["target"] or None,
                status=None if tampered or not status else SessionStatus(status),
                since=since,
                until=until,
                limit=TAMPERED_SCAN if tampered else size + 1,
                offset=0 if tampered else (page - 1) * size,
                scope=auditor.scope,
                sort=sort,
                ascending=params["order"] == "asc",
                unverified=tampered,
            )
            keys = known_gateway_keys(self.console.settings)
            with self._store() as conn:
                rows = queries.list_sessions(conn, wanted)
                verdicts = session_verdicts(conn, rows, keys)
            if tampered:
                rows = [r for r in rows if verdicts[r["id"]].status is Status.TAMPERED]
                rows = rows[(page - 1) * size : page * size + 1]
            more = len(rows) > size
            del rows[size:]
        self.console.log(request, "sessions", detail=_detail(params, page))
        return self.console.render(
            request,
            "sessions.html",
            {
                "rows": [self._row(row, verdicts) for row in rows],
                "params": params,
                "page": page,
                "more": more,
                "problems": problems,
                "statuses": STATUSES,
                "sorts": list(queries.SORTS),
            },
            400 if problems else 200,
        )

    def _row(self, row: dict[str, Any], verdicts: dict[uuid.UUID, Any]) -> dict[str, Any]:
        return {
            "id": row["id"].hex,
            "short": row["id"].hex[: queries.MIN_PREFIX],
            "operator": filters.shown(row["operator"]),
            "target": filters.shown(row["target"]),
            "request": request_text(row, 60),
            "started_at": row["started_at"],
            "duration": duration_text(row),
            "status": row["status"],
            "exit": exit_text(row),
            "chain": verdicts[row["id"]].status.value,
            "masked": row["masked_input"] or "-",
        }

    def session(self, request: Request) -> Response:
        auditor: Auditor = request.state.auditor
        keys = known_gateway_keys(self.console.settings)
        with self._store() as conn:
            row = self._in_scope(conn, request)
            verdict = session_verdicts(conn, [row], keys)[row["id"]]
            moved = (
                queries.list_transfers(
                    conn,
                    queries.TransferFilter(
                        session_id=row["id"],
                        everything=True,
                        limit=TRANSFERS_SHOWN,
                        scope=auditor.scope,
                    ),
                )
                if row["transfers"]
                else []
            )
        commands = self._commands(row["id"])
        self.console.log(request, "view", session_id=row["id"])
        start = _seconds(request.query_params.get("t"))
        player = {
            "t": start,
            "speed": _choice(request.query_params.get("speed"), SPEEDS, "1"),
            "idle": _choice(request.query_params.get("idle"), IDLE_LIMITS, "2"),
            "input": request.query_params.get("input") == "1",
        }
        cast = f"/sessions/{row['id'].hex}/cast" + ("?input=1" if player["input"] else "")
        live = row["status"] == "active" and not request.query_params.get("t")
        fields = [
            (name, value if isinstance(value, Markup) else filters.shown(value))
            for name, value in session_fields(
                row,
                filters.when(row["started_at"]),
                filters.when(row["ended_at"]),
                f"{verdict.status.value}: {verdict.detail}",
                signer_text(verdict.signer, keys),
            )
        ]
        return self.console.render(
            request,
            "session.html",
            {
                "row": row,
                "id": row["id"].hex,
                "fields": fields,
                "verdict": verdict,
                "commands": commands,
                "transfers": moved,
                "transfers_shown": TRANSFERS_SHOWN,
                "player": player,
                "cast": cast,
                "live": live,
                "may_terminate": auditor.may_terminate and row["status"] == "active",
                "speeds": SPEEDS,
                "idle_limits": IDLE_LIMITS,
                "exports": list(EXPORTS),
            },
        )

    def watchable(self, connection: HTTPConnection) -> dict[str, Any]:
        """The session a live view asks for, in scope (404 otherwise); the watch logged."""
        with self._store() as conn:
            row = self._in_scope(conn, connection)
        self.console.log(connection, "watch", session_id=row["id"])
        return row

    def given_up(self, session_id: uuid.UUID) -> bool:
        """Whether the store marked the session interrupted without an end chunk: its
        gateway went silent and never ended it (a live view asks now and then)."""
        with self._store() as conn:
            row = queries.session(conn, session_id)
        return interrupted.marked_by_store(
            row["end_reason"], row["interrupted_at"], row["ended_at"]
        )

    def terminate(self, request: Request, reason: str) -> Response:
        """End an active session (the auditor's ``terminate`` right, in scope)."""
        auditor: Auditor = request.state.auditor
        with self._store() as conn:
            row = self._in_scope(conn, request)
        if not auditor.may_terminate:
            self.console.log(request, "denied", session_id=row["id"], detail="terminate")
            raise HTTPException(403, "you may not terminate sessions (auditors.terminate)")
        if not reason:
            raise HTTPException(400, "give a reason: the operator is shown it, and it is recorded")
        self.console.log(request, "terminate", session_id=row["id"], detail=reason)
        if row["status"] != "active":
            outcome, done = f"already ended: {filters.shown(row['end_reason'])}", False
        else:
            order = control.Terminate(
                request_id=control.new_id(),
                at=control.now_ns(),
                session=str(row["id"]),
                auditor=auditor.name,
                reason=reason,
            )
            try:
                answers = ask(self.console.settings, order)
            except BrokerError as exc:
                raise HTTPException(503, f"the request could not be sent: {exc}") from None
            done = bool(answers)
            outcome = (
                answers[0].detail
                if answers
                else "no gateway answered: the session is not open on a running gateway "
                "(it may have just ended)"
            )
        return self.console.render(
            request,
            "terminated.html",
            {"id": row["id"].hex, "outcome": outcome, "done": done},
            200 if done else 409,
        )

    def cast(self, request: Request) -> Response:
        with self._store() as conn:
            row = self._in_scope(conn, request)
        with_input = request.query_params.get("input") == "1"
        commands = self._commands(row["id"]) or []
        markers = [(hit.t / 1e9, f"$ {hit.text}"[:200]) for hit in commands]
        self.console.log(
            request,
            "replay",
            session_id=row["id"],
            detail="with input" if with_input else "",
        )

        def lines(conn: Connection) -> Iterator[bytes]:
            events = (
                event for _seq, event in chunk_events(queries.chunk_stream(conn, row["id"]), _skip)
            )
            for line in asciicast(events, markers=markers, with_input=with_input):
                yield line + b"\n"

        return StreamingResponse(
            self._streamed(lines), media_type="application/x-asciicast; charset=utf-8"
        )

    def export(self, request: Request) -> Response:
        kind = request.path_params["kind"]
        if kind not in EXPORTS:
            raise HTTPException(404, "no such export: asciicast, raw or json")
        shape, media, suffix = EXPORTS[kind]
        with self._store() as conn:
            row = self._in_scope(conn, request)
        self.console.log(request, "export", session_id=row["id"], detail=kind)

        def pieces(conn: Connection) -> Iterator[bytes]:
            yield from export_lines(shape, queries.chunk_stream(conn, row["id"]), _skip)

        name = f"sshtrail-{row['id'].hex[:12]}.{suffix}"
        return StreamingResponse(
            self._streamed(pieces),
            media_type=media,
            headers={"content-disposition": f'attachment; filename="{name}"'},
        )

    def _streamed(self, produce: Any) -> Iterator[bytes]:
        """``produce(conn)``'s pieces joined into writes of :data:`PIECE` bytes, on a
        connection of its own held for the download only."""
        with self.console.store.connect() as conn:
            pending: list[bytes] = []
            size = 0
            for piece in produce(conn):
                pending.append(piece)
                size += len(piece)
                if size >= PIECE:
                    yield b"".join(pending)
                    pending, size = [], 0
            if pending:
                yield b"".join(pending)

    # -- search ------------------------------------------------------------------------

    def search(self, request: Request) -> Response:
        auditor: Auditor = request.state.auditor
        params = _params(request, "q", "kind", "operator", "target", "since", "until")
        problems: list[str] = []
        since = _moment(params["since"], "since", problems)
        until = _moment(params["until"], "until", problems)
        kind = params["kind"]
        _one_of("kind", kind, KINDS, problems)
        hits: list[dict[str, Any]] = []
        notes: list[str] = []
        text = params["q"]
        if text.strip() and not problems:
            query = Query(
                text,
                kind=kind or None,  # type: ignore[arg-type]
                operator=params["operator"] or None,
                target=params["target"] or None,
                since=since,
                until=until,
                limit=SEARCH_LIMIT,
                scope=auditor.scope,
            )
            found = find(
                query, lambda: self.console.search_engine().connect(), self.console.store.connect
            )
            if "index" in found.unread:
                notes.append("The search index cannot be read yet: is the index group running?")
            if "store" in found.unread:
                notes.append("File transfers were not searched: the store cannot be read.")
            hits = [
                {
                    "session": hit.session_id.hex,
                    "short": hit.session_id.hex[: queries.MIN_PREFIX],
                    "kind": hit.kind,
                    "t": hit.t / 1e9,
                    "at": hit.at,
                    "operator": filters.shown(hit.operator),
                    "target": filters.shown(hit.target),
                    "text": filters.highlighted(hit.text, hit.matches(text)),
                    "certain": hit.certain,
                }
                for hit in found.hits
            ]
        if text.strip():
            self.console.log(request, "search", detail=_detail(params, 1))
        return self.console.render(
            request,
            "search.html",
            {
                "params": params,
                "hits": hits,
                "limit": SEARCH_LIMIT,
                "problems": problems,
                "notes": notes,
                "kinds": KINDS,
            },
            400 if problems else 200,
        )

    # -- admin pages -------------------------------------------------------------------

    def lag(self, request: Request) -> Response:
        groups = (
            self.console.settings.consumer.store_group,
            self.console.settings.consumer.index_group,
        )
        rows: list[PartitionLag] = []
        problems: list[str] = []
        try:
            reader = self._lag_reader()
            for group in groups:
                try:
                    rows += reader.read(group)
                except NoSuchGroup as exc:
                    problems.append(str(exc))
        except BrokerError as exc:
            problems.append(str(exc))
            self._lag = None
        self.console.log(request, "lag")
        return self.console.render(request, "lag.html", {"rows": rows, "problems": problems})

    def _lag_reader(self) -> LagReader:
        if self._lag is None:
            self._lag = LagReader(self.console.settings, timeout=5.0, window_s=600.0)
        return self._lag

    def access_log(self, request: Request) -> Response:
        params = _params(request, "auditor", "action", "session")
        page = _number(request.query_params.get("page"), 1, 1, 100_000)
        size = self.console.settings.web.page_size
        problems: list[str] = []
        session_id = None
        if params["session"]:
            try:
                session_id = uuid.UUID(params["session"])
            except ValueError:
                problems.append("session: a full session id")
        _one_of("action", params["action"], access.ACTIONS, problems)
        self.console.log(request, "access-log", detail=_detail(params, page))
        found: list[access.Entry] = []
        if not problems:
            with self._store() as conn:
                found = access.entries(
                    conn,
                    auditor=params["auditor"] or None,
                    action=params["action"] or None,
                    session_id=session_id,
                    limit=size + 1,
                    offset=(page - 1) * size,
                )
        return self.console.render(
            request,
            "access_log.html",
            {
                "entries": found[:size],
                "more": len(found) > size,
                "page": page,
                "params": params,
                "problems": problems,
                "actions": access.ACTIONS,
            },
            400 if problems else 200,
        )

    # -- shared ------------------------------------------------------------------------

    def _store(self) -> AbstractContextManager[Connection]:
        """A store connection for one answer; a store that cannot be read is a 503 page."""
        return reading(self.console.store, _unreadable)

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


def _skip(seq: int, why: str) -> None:
    """A chunk that does not decode is left out of the player and downloads (as from
    ``sshtrail export``); ``verify`` and the session page say what is wrong."""


def _params(request: Request, *names: str) -> dict[str, str]:
    return {name: request.query_params.get(name, "")[:256] for name in names}


def _detail(params: dict[str, str], page: int) -> str:
    shown = " ".join(f"{k}={v!r}" for k, v in params.items() if v)
    return shown + (f" page={page}" if page > 1 else "")


def _moment(text: str, name: str, problems: list[str]) -> dt.datetime | None:
    if not text.strip():
        return None
    try:
        return moment(text)
    except ValueError as exc:
        problems.append(f"{name}: {exc}")
        return None


def _one_of(name: str, value: str, allowed: tuple[str, ...], problems: list[str]) -> None:
    """A filter's value, if given, must be one of ``allowed``; else a problem says so."""
    if value and value not in allowed:
        problems.append(f"{name}: one of {', '.join(allowed)}")


def _number(text: str | None, default: int, low: int, high: int) -> int:
    try:
        return min(max(int(text or default), low), high)
    except ValueError:
        return default


def _seconds(text: str | None) -> float:
    try:
        value = float(text or 0)
    except ValueError:
        return 0.0
    return value if 0 <= value < 1e9 else 0.0


def _choice(text: str | None, allowed: tuple[str, ...], default: str) -> str:
    return text if text in allowed else default


def _unreadable(why: str, _opening: bool) -> HTTPException:
    return HTTPException(503, f"the store cannot be read: {why}")
