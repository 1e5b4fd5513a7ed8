"""What the console's handlers share: settings, the store, accounts, sessions, templates."""

from __future__ import annotations

import hashlib
import hmac
import logging
import threading
import uuid
from dataclasses import dataclass
from typing import Any

import jinja2
from sqlalchemy import Engine
from sqlalchemy.exc import OperationalError, ProgrammingError
from starlette.exceptions import HTTPException
from starlette.requests import HTTPConnection, Request
from starlette.responses import HTMLResponse, Response

from consumer.web import access
from consumer.web.auth import Accounts, Auditor, LoginLimit, Proxies
from consumer.web.live import LiveHub
from consumer.web.oidc import RelyingParty
from consumer.web.signins import SignIns
from sshtrail.accesschain import AccessChain
from sshtrail.db import existing_engine
from sshtrail.settings import Settings

log = logging.getLogger(__name__)
SESSION_COOKIE = "sshtrail_session"


@dataclass(frozen=True)
class Console:
    """What the handlers share: settings, the store, accounts and signed-in sessions."""

    settings: Settings
    store: Engine
    accounts: Accounts
    #: The signed-in sessions, in the store (consumer/web/signins.py).
    sessions: SignIns
    limit: LoginLimit
    proxies: Proxies
    templates: jinja2.Environment
    tls: bool
    hub: LiveHub
    #: This process's chain of the access log (sshtrail/accesschain.py).
    access: AccessChain
    #: Per process: the CSRF tokens of auditors a trusted proxy names (no cookie session).
    secret: bytes
    _search: dict[str, Engine]
    _lock: threading.Lock
    #: The identity provider of ``[web.oidc]``, where one is configured.
    oidc: RelyingParty | None = None

    @property
    def session_cookie(self) -> str:
        """The signed-in session's cookie; ``__Host-``: the browser keeps it only if
        Secure, for this host, on path /."""
        return f"__Host-{SESSION_COOKIE}" if self.tls else SESSION_COOKIE

    def sign_in(self, response: Response, auditor: Auditor, id_token: str | None = None) -> None:
        """Start a signed-in session for ``auditor``, its cookie set on ``response``
        (``id_token``: the provider's, for its sign-out)."""
        response.set_cookie(
            self.session_cookie,
            self.sessions.create(auditor, id_token),
            max_age=self.settings.web.session_hours * 3600,
            path="/",
            secure=self.tls,
            httponly=True,
            samesite="strict",
        )

    def csrf_for(self, request: HTTPConnection) -> str:
        """The token the page's forms carry and their POSTs must send back."""
        signed = getattr(request.state, "signed", None)
        if signed is not None:
            return str(signed.csrf)
        auditor = getattr(request.state, "auditor", None)
        if auditor is None:
            return ""
        return hmac.new(self.secret, auditor.name.encode(), hashlib.sha256).hexdigest()

    def search_engine(self) -> Engine:
        """The search index's engine; :class:`NotSetUp` until the index group made it."""
        with self._lock:
            if "engine" not in self._search:
                self._search["engine"] = existing_engine(self.settings.search_url, "search index")
            return self._search["engine"]

    def render(
        self, request: Request, name: str, context: dict[str, Any], status: int = 200
    ) -> HTMLResponse:
        page = self.templates.get_template(name).render(
            {
                "request": request,
                "auditor": getattr(request.state, "auditor", None),
                "csrf": self.csrf_for(request),
                **context,
            }
        )
        return HTMLResponse(page, status_code=status)

    def address(self, request: HTTPConnection) -> str:
        """The client's address: the proxy's word for it behind a trusted proxy."""
        peer = request.client.host if request.client else "?"
        if self.proxies.trusted(peer):
            forwarded = request.headers.get("x-forwarded-for", "")
            last = forwarded.split(",")[-1].strip()
            if last:
                return last[:64]
        return peer

    def log(
        self,
        request: HTTPConnection,
        action: str,
        *,
        session_id: uuid.UUID | None = None,
        detail: str = "",
        auditor: str | None = None,
    ) -> None:
        """Write the access log entry; a store that cannot take it stops the answer."""
        who = auditor if auditor is not None else request.state.auditor.name
        try:
            access.record(
                self.access,
                who,
                action,
                self.address(request),
                session_id=session_id,
                detail=detail,
            )
        except (OperationalError, ProgrammingError) as exc:
            log.error("cannot write the access log: %s", exc.orig)
            raise HTTPException(503, "the access log cannot be written: nothing is shown") from None
