"""``sshtrail web``: the auditors' console, an ASGI application (Starlette).

Pages are rendered on the server (Jinja2, autoescaped); the only scripts are
the console's own file and the vendored asciinema player, both from
``/static`` (the Content-Security-Policy allows nothing else). It reads the
store and the search index with the queries the CLI uses
(:mod:`sshtrail.queries`, :mod:`sshtrail.search`), within the signed-in
auditor's scope: a session out of scope is a 404 everywhere. Every look is
written to the access log first (:mod:`consumer.web.access`).

Database work runs in Starlette's thread pool (the handlers below are plain
functions); recordings are streamed from the store a few chunks at a time.

Why one module of a little more than 400 lines: it is the console's one table of
routes and the middleware every page goes through (sign-in, CSRF, headers, the
access log); what each page does is in ``consumer/web/pages/``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import jinja2
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import HTTPConnection, Request
from starlette.responses import (
    PlainTextResponse,
    RedirectResponse,
    Response,
)
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles
from starlette.websockets import WebSocket

from consumer.web import access, filters
from consumer.web.auth import (
    Accounts,
    Auditor,
    LoginLimit,
    Proxies,
    same_token,
)
from consumer.web.console import Console
from consumer.web.headers import SecurityHeaders
from consumer.web.live import Ending, LiveHub, end_when_given_up, stream_live
from consumer.web.oidc import RelyingParty
from consumer.web.pages.active import ActivePages
from consumer.web.pages.admin import Admin
from consumer.web.pages.alerts import AlertPages
from consumer.web.pages.base import local_path
from consumer.web.pages.downloads import Downloads
from consumer.web.pages.files import FileDownloads
from consumer.web.pages.locks import LockPages
from consumer.web.pages.moderation import ModerationPages, ModerationPorts
from consumer.web.pages.oidcsignin import CALLBACK, OidcSignIn
from consumer.web.pages.pieces import Pieces
from consumer.web.pages.retention import RetentionPage
from consumer.web.pages.reviews import ReviewPages
from consumer.web.pages.search import Search
from consumer.web.pages.sessions import SessionPages
from consumer.web.pages.signin import SignIn
from consumer.web.signins import SignedIn, SignIns
from sshtrail.db import make_engine
from sshtrail.settings import Settings
from sshtrail.timespec import clock

log = logging.getLogger(__name__)

HERE = Path(__file__).parent
LOGIN_COOKIE = "sshtrail_login"
#: How often a live view checks that its sign-in still stands.
LIVE_RECHECK_S = 10.0


def create_app(settings: Settings, moderation_ports: ModerationPorts | None = None) -> Starlette:
    """The console over the store and index of ``settings`` (moderation's control topic
    through ``moderation_ports`` where given: tests)."""
    templates = jinja2.Environment(
        loader=jinja2.FileSystemLoader(HERE / "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )
    templates.filters["when"] = filters.when
    templates.filters["shown"] = filters.shown
    templates.filters["clock"] = clock
    templates.globals["query"] = _query_string
    web = settings.web
    store = make_engine(settings.database_url)
    accounts = Accounts(settings)
    console = Console(
        settings=settings,
        store=store,
        accounts=accounts,
        sessions=SignIns(
            store, web.idle_timeout_min * 60.0, web.session_hours * 3600.0, accounts.still_allowed
        ),
        limit=LoginLimit(web.login_failures),
        proxies=Proxies(settings),
        templates=templates,
        tls=bool(web.tls_cert),
        hub=LiveHub(settings),
        access=access.chain(settings, store),
        secret=secrets.token_bytes(32),
        _search={},
        _lock=threading.Lock(),
        oidc=RelyingParty(web.oidc) if web.oidc.enabled else None,
    )
    signin, sessions, downloads = SignIn(console), SessionPages(console), Downloads(console)
    search, admin, reviews = Search(console), Admin(console), ReviewPages(console)
    alerts, moderation = AlertPages(console), ModerationPages(console, moderation_ports)
    oidc, locks, active = OidcSignIn(console), LockPages(console), ActivePages(console)
    pieces = Pieces(console)
    signed_in = _guard(console)
    routes = [
        Route("/", lambda request: RedirectResponse("/sessions", 303)),
        Route("/login", signin.login_form, methods=["GET"]),
        Route("/login", _login(console, signin), methods=["POST"]),
        Route("/login/oidc", oidc.start, methods=["GET"]),
        Route(CALLBACK, oidc.callback, methods=["GET"]),
        Route("/logout", _logout(console, oidc), methods=["POST"]),
        Route("/healthz", lambda request: PlainTextResponse("ok")),
        Route("/favicon.ico", lambda request: Response(status_code=204)),
        Route("/sessions", signed_in(sessions.sessions)),
        Route("/active", signed_in(active.active)),
        Route("/active.json", signed_in(active.active_json)),
        Route("/sessions/{sid}", signed_in(sessions.session)),
        Route("/sessions/{sid}/cast", signed_in(downloads.cast)),
        Route("/sessions/{sid}/pieces", signed_in(pieces.index)),
        Route("/sessions/{sid}/pieces/{n}", signed_in(pieces.piece)),
        Route("/sessions/{sid}/export/{kind}", signed_in(downloads.export)),
        Route("/sessions/{sid}/files/{n}", signed_in(FileDownloads(console).download)),
        Route("/sessions/{sid}/terminate", _terminate(console, sessions), methods=["POST"]),
        Route("/sessions/{sid}/moderate", _presence(console, moderation), methods=["POST"]),
        WebSocketRoute("/sessions/{sid}/live", _live(console, sessions)),
        Route("/search", signed_in(search.search)),
        Route("/reviews", signed_in(reviews.reviews)),
        Route("/reviews/{rid}", _answer_review(console, reviews), methods=["POST"]),
        Route("/alerts", signed_in(alerts.alerts)),
        Route("/moderation", signed_in(moderation.moderation)),
        Route("/locks", signed_in(locks.locks)),
        Route("/locks/lock", _change_lock(console, locks, lock=True), methods=["POST"]),
        Route("/locks/unlock", _change_lock(console, locks, lock=False), methods=["POST"]),
        Route("/lag", signed_in(admin.lag, admin=True)),
        Route("/access-log", signed_in(admin.access_log, admin=True)),
        Route("/retention", signed_in(RetentionPage(console).retention, admin=True)),
        Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
    ]

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        yield
        reviews.close()
        moderation.close()
        locks.close()
        console.hub.close()
        if console.oidc is not None:
            console.oidc.close()
        console.access.close()
        console.store.dispose()

    app = Starlette(
        routes=routes,
        exception_handlers={HTTPException: _error_page(console)},
        lifespan=lifespan,
    )
    app.add_middleware(SecurityHeaders, tls=console.tls)
    return app


Handler = Callable[[Request], Response]


def _guard(console: Console) -> Callable[..., Callable[[Request], Any]]:
    """Wraps a page: the auditor signed in (cookie or trusted proxy), admins only where
    asked; anyone else is sent to the login page (or refused, behind a proxy)."""

    def guard(handler: Handler, admin: bool = False) -> Callable[[Request], Any]:
        async def endpoint(request: Request) -> Response:
            auditor = await run_in_threadpool(_who, console, request)
            if auditor is None:
                if console.proxies and console.proxies.trusted(_peer(request)):
                    raise HTTPException(403, "the proxy named no auditor of this console")
                target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
                return RedirectResponse("/login?" + urlencode({"next": target}), 303)
            request.state.auditor = auditor
            if admin and not auditor.admin:
                await run_in_threadpool(
                    console.log, request, "denied", detail=f"admin page {request.url.path}"
                )
                raise HTTPException(404, "no such page")
            return await run_in_threadpool(handler, request)

        return endpoint

    return guard


def _peer(request: HTTPConnection) -> str | None:
    return request.client.host if request.client else None


def _who(console: Console, request: HTTPConnection) -> Auditor | None:
    if console.proxies.trusted(_peer(request)):
        name = request.headers.get(console.proxies.header)
        if not name:
            return None
        request.state.signed = None
        return console.accounts.named(name.strip(), via="proxy")
    signed = console.sessions.get(request.cookies.get(_cookie_name(console)))
    request.state.signed = signed
    return signed.auditor if signed is not None else None


def _cookie_name(console: Console) -> str:
    return console.session_cookie


def _login(console: Console, pages: SignIn) -> Callable[[Request], Any]:
    async def login(request: Request) -> Response:
        async with request.form(max_files=0, max_fields=8, max_part_size=4096) as form:
            name = str(form.get("name", ""))[:128].strip()
            password = str(form.get("password", ""))[:1024]
            token = str(form.get("csrf", ""))
            wanted = local_path(str(form.get("next", "/sessions")))
        address = console.address(request)
        request.state.signed = None
        request.state.auditor = None

        def again(message: str, status: int) -> Response:
            return pages.login_page(request, message, wanted, status)

        if not same_token(token, request.cookies.get(LOGIN_COOKIE)):
            return again("The form expired; sign in again.", 400)
        if not name or not password:
            return again("Give a name and a password.", 400)
        attempt = console.limit.reserve(address, name)
        if attempt is None:
            if console.limit.first_refusal(address, name):
                await run_in_threadpool(
                    console.log, request, "login-refused", auditor=name, detail="too many failures"
                )
            return again("Too many failed sign-ins; wait 15 minutes.", 429)
        auditor = await run_in_threadpool(console.accounts.check, name, password)
        if auditor is None:
            await run_in_threadpool(console.log, request, "login-failed", auditor=name)
            return again("Wrong name or password.", 401)
        attempt.succeeded()
        await run_in_threadpool(console.log, request, "login", auditor=name)
        response = RedirectResponse(wanted, 303)
        console.sign_in(response, auditor)
        response.delete_cookie(LOGIN_COOKIE, path="/login")
        return response

    return login


def _logout(console: Console, oidc: OidcSignIn) -> Callable[[Request], Any]:
    async def logout(request: Request) -> Response:
        async with request.form(max_files=0, max_fields=4, max_part_size=1024) as form:
            token = str(form.get("csrf", ""))
        cookie = request.cookies.get(_cookie_name(console))
        signed = await run_in_threadpool(console.sessions.get, cookie)
        if signed is None:
            return RedirectResponse("/login", 303)
        if not same_token(token, signed.csrf):
            raise HTTPException(403, "the form's token does not match: sign out from the page")
        request.state.auditor = signed.auditor
        await run_in_threadpool(console.sessions.end, cookie, signed.auditor.name)
        await run_in_threadpool(console.log, request, "logout")
        at_provider = None
        if signed.auditor.via == "oidc" and signed.id_token:
            at_provider = await run_in_threadpool(oidc.signed_out, request, signed.id_token)
        response = at_provider or RedirectResponse("/login", 303)
        response.delete_cookie(_cookie_name(console), path="/", secure=console.tls)
        return response

    return logout


async def _posted_form(
    console: Console, request: Request, what: str
) -> tuple[dict[str, str], Response | None]:
    """An action form posted from a page by a signed-in auditor: its fields (``reason``
    with its blanks folded, at most 500 characters); a redirect to the login page when
    nobody is signed in. A token that does not match is a 403."""
    auditor = await run_in_threadpool(_who, console, request)
    if auditor is None:
        return {}, RedirectResponse("/login", 303)
    request.state.auditor = auditor
    async with request.form(max_files=0, max_fields=4, max_part_size=4096) as form:
        fields = {name: str(value) for name, value in form.items()}
    if not same_token(fields.get("csrf", ""), console.csrf_for(request)):
        raise HTTPException(403, f"the form's token does not match: {what} from the page")
    fields["reason"] = " ".join(fields.get("reason", "").split())[:500]
    return fields, None


def _terminate(console: Console, pages: SessionPages) -> Callable[[Request], Any]:
    """POST from an active session's page: end it, with a reason (``terminate`` right)."""

    async def terminate(request: Request) -> Response:
        fields, elsewhere = await _posted_form(console, request, "terminate")
        if elsewhere is not None:
            return elsewhere
        return await run_in_threadpool(pages.terminate, request, fields["reason"])

    return terminate


def _answer_review(console: Console, pages: ReviewPages) -> Callable[[Request], Any]:
    """POST from the reviews page: approve or deny a held command (``approve`` right)."""

    async def answer(request: Request) -> Response:
        fields, elsewhere = await _posted_form(console, request, "answer")
        if elsewhere is not None:
            return elsewhere
        verdict = fields.get("answer", "")
        if verdict not in ("approve", "deny"):
            raise HTTPException(400, "answer approve or deny")
        review_id = str(request.path_params["rid"])
        approve = verdict == "approve"
        return await run_in_threadpool(pages.answer, request, review_id, approve, fields["reason"])

    return answer


def _change_lock(console: Console, pages: LockPages, lock: bool) -> Callable[[Request], Any]:
    """POST from the locks page: lock or unlock an operator, with a reason (admins)."""

    async def change(request: Request) -> Response:
        fields, elsewhere = await _posted_form(console, request, "lock" if lock else "unlock")
        if elsewhere is not None:
            return elsewhere
        return await run_in_threadpool(pages.change, request, lock, fields)

    return change


def _presence(console: Console, pages: ModerationPages) -> Callable[[Request], Any]:
    """POST from a session page in moderator mode: ``state`` join, here or leave."""

    async def presence(request: Request) -> Response:
        received = time.monotonic()  # a heartbeat left waiting for a thread is stale
        fields, elsewhere = await _posted_form(console, request, "moderate")
        if elsewhere is not None:
            return elsewhere
        return await run_in_threadpool(pages.presence, request, fields.get("state", ""), received)

    return presence


def _live(console: Console, pages: SessionPages) -> Callable[[WebSocket], Any]:
    """The live view of an active session (asciicast v2 over a WebSocket, the player's
    ``v2.asciicast`` protocol). Nothing the browser sends is read: the terminal shown
    never answers the session."""

    async def live(websocket: WebSocket) -> None:
        auditor = await run_in_threadpool(_who, console, websocket)
        origin = websocket.headers.get("origin")
        expected = f"{'https' if console.tls else 'http'}://{websocket.headers.get('host')}"
        if auditor is None or (origin is not None and origin != expected):
            await websocket.close(code=4403)  # no session, or another site's page
            return
        websocket.state.auditor = auditor
        try:
            row = await run_in_threadpool(pages.watchable, websocket)
        except HTTPException:
            await websocket.close(code=4404)
            return
        protocols = websocket.scope.get("subprotocols", [])
        await websocket.accept("v2.asciicast" if "v2.asciicast" in protocols else None)
        loop = asyncio.get_running_loop()
        ending = Ending(loop)
        given_up = loop.create_task(
            end_when_given_up(partial(run_in_threadpool, pages.given_up, row["id"]), ending)
        )
        try:
            await _watched(console, websocket, row["id"], ending)
        finally:
            given_up.cancel()

    return live


async def _watched(
    console: Console, websocket: WebSocket, session_id: uuid.UUID, ending: Ending
) -> None:
    """Stream the session until it ends, the browser leaves, or the sign-in ends."""
    signed: SignedIn | None = websocket.state.signed
    if signed is None:  # named by a trusted proxy: no sign-in here to end
        await stream_live(console.hub, websocket, session_id, ending)
        return
    forget = console.sessions.on_end(signed, lambda: ending.end("signed out"))
    loop = asyncio.get_running_loop()
    expiry = loop.call_later(console.sessions.left_s(signed), ending.end, "the sign-in expired")
    cookie = websocket.cookies.get(_cookie_name(console))
    rechecks = loop.create_task(_still_signed_in(console, cookie, ending))
    try:
        await stream_live(console.hub, websocket, session_id, ending)
    finally:
        expiry.cancel()
        rechecks.cancel()
        forget()


async def _still_signed_in(console: Console, cookie: str | None, ending: Ending) -> None:
    """A live view outlasts the request that opened it: its sign-in is looked up again
    every :data:`LIVE_RECHECK_S`, so a sign-out or revocation through another console
    process, or ``sshtrail web revoke``, ends it too."""
    while True:
        await asyncio.sleep(LIVE_RECHECK_S)
        try:
            signed = await run_in_threadpool(console.sessions.get, cookie)
        except HTTPException:
            continue  # the store is away: the sign-in's expiry still ends it
        if signed is None:
            ending.end("signed out")
            return


def _error_page(console: Console) -> Callable[[Request, Exception], Any]:
    async def handler(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        if not hasattr(request.state, "auditor"):
            request.state.auditor = None
        if not hasattr(request.state, "signed"):
            request.state.signed = None
        return console.render(
            request,
            "error.html",
            {"status": exc.status_code, "message": exc.detail},
            exc.status_code,
        )

    return handler


def _query_string(current: dict[str, str], **changes: object) -> str:
    """The page's query string with ``changes`` (None drops a key)."""
    merged: dict[str, object] = {**current, **changes}
    return urlencode({k: str(v) for k, v in merged.items() if v not in (None, "")})
