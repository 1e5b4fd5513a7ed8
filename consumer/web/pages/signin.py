"""The sign-in page, with its double-submit token."""

from __future__ import annotations

import secrets

from starlette.requests import Request
from starlette.responses import Response

from consumer.web.pages.base import Page
from consumer.web.pages.oidcsignin import login_link


class SignIn(Page):
    """The sign-in form; the sign-in itself is the app's (``consumer/web/app.py``)."""

    def login_form(self, request: Request) -> Response:
        request.state.auditor = None
        request.state.signed = None
        wanted = request.query_params.get("next", "/sessions")
        return self.login_page(request, "", wanted, 200)

    def login_page(self, request: Request, message: str, wanted: str, status: int) -> Response:
        """The form, with a fresh double-submit token in its cookie and its field."""
        token = secrets.token_urlsafe(32)
        proxied = bool(self.console.proxies)
        provider = self.console.oidc
        response = self.console.render(
            request,
            "login.html",
            {
                "message": message,
                "next": wanted,
                "login_csrf": token,
                "proxied": proxied,
                "provider": provider.label if provider is not None else "",
                "provider_link": login_link(wanted),
            },
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
