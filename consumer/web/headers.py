"""What every answer of the console carries: its security headers (one content security
policy, no framing, no sniffing, no referrer, no caching but static files, HSTS under
TLS), and the refusal of a request body larger than its forms need."""

from __future__ import annotations

from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

#: The one policy of every answer: scripts, styles and everything else from the
#: console itself; the player compiles its terminal emulator from WebAssembly.
CSP = (
    "default-src 'none'; script-src 'self' 'wasm-unsafe-eval'; style-src 'self'; "
    "img-src 'self' data:; font-src 'self' data:; connect-src 'self'; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
SECURITY_HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"cross-origin-resource-policy", b"same-origin"),
    (b"permissions-policy", b"camera=(), microphone=(), geolocation=(), clipboard-read=()"),
]


#: The largest request body taken: the console's forms are a few short fields.
MAX_BODY = 16 << 10


class SecurityHeaders:
    """Adds the headers above to every answer, and ``no-store`` to all but static files;
    HSTS under TLS. A request with a body larger than :data:`MAX_BODY` (or of unknown
    length) is refused before anything reads it."""

    def __init__(self, app: ASGIApp, tls: bool) -> None:
        self.app = app
        self.tls = tls

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        static = scope["path"].startswith("/static/")
        if scope["method"] not in ("GET", "HEAD") and not _small_body(scope):
            refused = PlainTextResponse("request body too large", status_code=413)
            await refused(scope, receive, self._with_headers(send, static))
            return
        await self.app(scope, receive, self._with_headers(send, static))

    def _with_headers(self, send: Send, static: bool) -> Send:
        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers += SECURITY_HEADERS
                if not static:
                    headers.append((b"cache-control", b"no-store"))
                if self.tls:
                    headers.append((b"strict-transport-security", b"max-age=31536000"))
                message["headers"] = headers
            await send(message)

        return sending


def _small_body(scope: Scope) -> bool:
    length = dict(scope["headers"]).get(b"content-length")
    return length is not None and length.isdigit() and int(length) <= MAX_BODY
