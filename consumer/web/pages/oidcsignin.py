"""Sign-in with the identity provider: the redirect to it and the callback from it.

The browser's half of a started sign-in is a cookie (``sshtrail_oidc``, HttpOnly,
path ``/login/oidc``) that the callback must bring back with the state. It is
SameSite=Lax, not Strict: the callback is a navigation from the provider's site, on
which a Strict cookie is not sent. For the same reason the callback does not
redirect: the console's session cookie is Strict, and a redirect that follows a
cross-site navigation would arrive without it, so the callback answers a page that
moves on to where the auditor wanted to go, from this site.
"""

from __future__ import annotations

import logging
from urllib.parse import quote, urlencode

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from consumer.web.oidc import PENDING_S, Refused, RelyingParty
from consumer.web.pages.base import Page, local_path

log = logging.getLogger(__name__)

#: The cookie that binds a started sign-in to the browser that started it.
OIDC_COOKIE = "sshtrail_oidc"
CALLBACK = "/login/oidc/callback"


class OidcSignIn(Page):
    """``/login/oidc`` and its callback; 404 both where ``[web.oidc]`` is not set."""

    def start(self, request: Request) -> Response:
        request.state.auditor = None
        request.state.signed = None
        wanted = local_path(request.query_params.get("next", "/sessions"))
        address = self.console.address(request)
        try:
            started = self._provider().start(self._redirect_uri(request), wanted, address)
        except Refused as refused:
            if refused.status == 429:
                raise HTTPException(429, "Too many sign-ins started; wait 10 minutes.") from None
            log.error("OIDC sign-in cannot start: %s", refused.reason)
            raise HTTPException(502, "The identity provider cannot be reached.") from None
        response = RedirectResponse(started.url, 303)
        response.set_cookie(
            OIDC_COOKIE,
            started.browser,
            max_age=PENDING_S,
            path="/login/oidc",
            secure=self.console.tls,
            httponly=True,
            samesite="lax",
        )
        return response

    def callback(self, request: Request) -> Response:
        request.state.auditor = None
        request.state.signed = None
        provider = self._provider()
        params = request.query_params
        try:
            if "error" in params:  # the state is left to expire: it proves nothing here
                said = " ".join(params.get("error", "").split())[:128]
                raise Refused(f"the provider answered {said}")
            finished = provider.finish(
                params.get("state", ""), params.get("code", ""), request.cookies.get(OIDC_COOKIE)
            )
        except Refused as refused:
            return self._refused(request, refused)
        self.console.log(request, "login", auditor=finished.auditor.name, detail=finished.detail)
        # Quoted as a Location header is: a browser drops tabs and newlines from the
        # refresh's URL, and "/<TAB>/elsewhere" would leave the console.
        onwards = quote(finished.wanted, safe=":/%#?=@[]!$&'()*+,;")
        response = self.console.render(
            request, "signed_in.html", {"wanted": onwards, "via": provider.label}
        )
        self.console.sign_in(response, finished.auditor, finished.id_token)
        response.delete_cookie(OIDC_COOKIE, path="/login/oidc", secure=self.console.tls)
        return response

    def _refused(self, request: Request, refused: Refused) -> Response:
        """The refusal, in the access log (a nameless one at most once a minute per
        address: anyone can call the callback) and on a page that says why in words
        the auditor can act on."""
        address = self.console.address(request)
        if refused.name != "-" or self.console.limit.first_refusal(address, "oidc"):
            self.console.log(
                request, "login-refused", auditor=refused.name, detail=f"oidc: {refused.reason}"
            )
        if refused.status == 400:
            message = "This sign-in expired, was used already or began elsewhere: start again."
        elif refused.status == 502:
            message = "The identity provider cannot be reached."
        elif refused.name != "-":
            message = f"{refused.name} is not given access to this console by their groups."
        else:
            message = "The identity provider's answer was not accepted."
        response = self.console.render(
            request,
            "error.html",
            {"status": refused.status, "message": message},
            refused.status,
        )
        response.delete_cookie(OIDC_COOKIE, path="/login/oidc", secure=self.console.tls)
        return response

    def _provider(self) -> RelyingParty:
        if self.console.oidc is None:
            raise HTTPException(404, "no such page")
        return self.console.oidc

    def _redirect_uri(self, request: Request) -> str:
        configured = self.console.settings.web.oidc.redirect_url
        return configured or str(request.base_url).rstrip("/") + CALLBACK

    def signed_out(self, request: Request, id_token: str) -> Response | None:
        """After the console's sign-out of an OIDC sign-in: a page that moves on to the
        provider's ``end_session_endpoint``, or None when it advertises none. A page,
        not a redirect: the sign-out is a form's POST, and the CSP's ``form-action
        'self'`` would stop a redirect of it to another site."""
        if self.console.oidc is None or not id_token:
            return None
        callback = self._redirect_uri(request)
        after = callback[: -len(CALLBACK)] + "/login" if callback.endswith(CALLBACK) else ""
        url = self.console.oidc.logout_url(id_token, after or str(request.base_url) + "login")
        if url is None:
            return None
        onwards = quote(url, safe=":/%#?=@[]!$&'()*+,;")
        request.state.auditor = None  # signed out: the page shows nobody
        request.state.signed = None
        return self.console.render(
            request, "signed_out.html", {"onwards": onwards, "via": self.console.oidc.label}
        )


def login_link(wanted: str) -> str:
    """The sign-in button's target, keeping where the auditor wanted to go."""
    return "/login/oidc?" + urlencode({"next": wanted})
