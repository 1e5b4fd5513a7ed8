"""A real OpenID Connect provider on loopback for the console's sign-in tests, built on
Authlib's server side (``authlib.oauth2.rfc6749.AuthorizationServer``, the
authorization code grant with ``authlib.oidc.core.grants.OpenIDCode`` and PKCE
required by ``authlib.oauth2.rfc7636.CodeChallenge``), served by ``http.server`` on
its own thread.

It publishes a discovery document and a JWKS, approves whoever :attr:`Provider.user`
is without a login page (the tests choose who signs in), and can be told to spoil
what it issues the way an attacker would (:attr:`Provider.spoil`): an ID token whose
signature is altered, one whose claims are altered under its signature, one signed
by a key it does not publish, or a well-signed one for another sign-in (nonce),
another client (aud), from another issuer (iss), or expired (exp).

Like many providers, it can leave the groups out of the ID token
(:attr:`Provider.groups_in_id_token`) and answer them from its userinfo endpoint, and
advertise an ``end_session_endpoint`` (:attr:`Provider.end_session`: RP-initiated
logout), recording each sign-out it is sent (:attr:`Provider.logouts`).
"""

from __future__ import annotations

import base64
import datetime as dt
import hmac
import json
import secrets
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar
from urllib.parse import parse_qsl, urlsplit

from authlib.oauth2.rfc6749 import AuthorizationServer, ClientMixin, OAuth2Request
from authlib.oauth2.rfc6749.grants import AuthorizationCodeGrant
from authlib.oauth2.rfc6749.requests import BasicOAuth2Payload
from authlib.oauth2.rfc6750 import BearerTokenGenerator
from authlib.oauth2.rfc7636 import CodeChallenge
from authlib.oidc.core import AuthorizationCodeMixin, UserInfo
from authlib.oidc.core.grants import OpenIDCode
from joserfc.jwk import RSAKey

from sshtrail import migrate
from sshtrail.db import make_engine
from sshtrail.tables import SESSIONS

CLIENT_ID = "sshtrail-console"
CLIENT_SECRET = "console-secret-for-tests"


@dataclass
class User:
    """Who the provider says signs in."""

    name: str
    groups: list[str]
    sub: str = field(default_factory=lambda: secrets.token_hex(8))


@dataclass
class _Client(ClientMixin):  # type: ignore[misc]
    client_id: str
    secret: str
    redirect_uris: list[str]

    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> str:
        return self.redirect_uris[0]

    def get_allowed_scope(self, scope: str | None) -> str:
        asked = (scope or "").split()
        return " ".join(s for s in asked if s in ("openid", "profile", "groups"))

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return redirect_uri in self.redirect_uris

    def check_client_secret(self, client_secret: str) -> bool:
        return hmac.compare_digest(client_secret.encode(), self.secret.encode())

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return method == "client_secret_basic" if endpoint == "token" else True

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code"

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type == "authorization_code"


@dataclass
class _Code(AuthorizationCodeMixin):  # type: ignore[misc]
    code: str
    client_id: str
    redirect_uri: str
    scope: str
    user: User
    nonce: str | None
    code_challenge: str | None
    code_challenge_method: str | None
    auth_time: int = field(default_factory=lambda: int(time.time()))

    def get_redirect_uri(self) -> str:
        return self.redirect_uri

    def get_scope(self) -> str:
        return self.scope

    def get_nonce(self) -> str | None:
        return self.nonce

    def get_auth_time(self) -> int:
        return self.auth_time


class _Request(OAuth2Request):  # type: ignore[misc]
    """An HTTP request as Authlib's grants read it: query and form in one payload."""

    def __init__(self, method: str, uri: str, headers: dict[str, str], body: str) -> None:
        super().__init__(method, uri, headers=headers)
        self._args = dict(parse_qsl(urlsplit(uri).query))
        self._form = dict(parse_qsl(body))
        self.payload = BasicOAuth2Payload({**self._args, **self._form})

    @property
    def args(self) -> dict[str, str]:
        return self._args

    @property
    def form(self) -> dict[str, str]:
        return self._form


class Provider(AuthorizationServer):  # type: ignore[misc]
    """The provider; start it with :func:`running`."""

    def __init__(self, issuer: str, redirect_uris: list[str]) -> None:
        super().__init__(scopes_supported=["openid", "profile", "groups"])
        self.issuer = issuer
        self.key = RSAKey.generate_key(2048, parameters={"kid": "signing-1"})
        self.client = _Client(CLIENT_ID, CLIENT_SECRET, redirect_uris)
        #: Who signs in next (None: the provider denies the request).
        self.user: User | None = None
        #: ``signature``, ``claims``, ``unpublished-key``, ``nonce``, ``audience``,
        #: ``issuer``, ``expired`` or None: how to spoil the ID token.
        self.spoil: str | None = None
        #: Whether the authorization endpoint shows a page before it answers (browsers).
        self.sign_in_page = False
        #: The authorization requests it received, as sent (the tests read PKCE's).
        self.requests: list[dict[str, str]] = []
        #: The tokens it issued.
        self.issued: list[dict[str, Any]] = []
        #: Whether the ID token carries ``groups`` (False: only userinfo answers them).
        self.groups_in_id_token = True
        #: Whether discovery advertises ``end_session_endpoint``.
        self.end_session = False
        #: The sign-outs it was sent, as sent (``id_token_hint``, ``post_logout_redirect_uri``).
        self.logouts: list[dict[str, str]] = []
        #: Another user's ``sub`` that userinfo answers with (None: the signed-in one's).
        self.userinfo_sub: str | None = None
        self._users_by_token: dict[str, User] = {}
        self._codes: dict[str, _Code] = {}
        self.register_token_generator(
            "default", BearerTokenGenerator(lambda *_args, **_kw: secrets.token_urlsafe(32))
        )
        self.register_grant(_CodeGrant, [CodeChallenge(required=True), _OpenIDCode(self)])

    def discovery(self) -> dict[str, Any]:
        return {
            "issuer": self.issuer,
            "authorization_endpoint": f"{self.issuer}/authorize",
            "token_endpoint": f"{self.issuer}/token",
            "jwks_uri": f"{self.issuer}/jwks",
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "code_challenge_methods_supported": ["S256"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic"],
            "userinfo_endpoint": f"{self.issuer}/userinfo",
            **({"end_session_endpoint": f"{self.issuer}/logout"} if self.end_session else {}),
        }

    def userinfo(self, authorization: str) -> tuple[int, Any, list[tuple[str, str]]]:
        user = self._users_by_token.get(authorization.removeprefix("Bearer "))
        if user is None:
            return 401, {"error": "invalid_token"}, []
        sub = self.userinfo_sub or user.sub
        return 200, {"sub": sub, "preferred_username": user.name, "groups": user.groups}, []

    def logout(self, query: dict[str, str]) -> tuple[int, Any, list[tuple[str, str]]]:
        """RP-initiated logout: recorded, then back to a registered place."""
        self.logouts.append(query)
        after = query.get("post_logout_redirect_uri", "")
        allowed = {uri.rsplit("/login/", 1)[0] + "/login" for uri in self.client.redirect_uris}
        if after in allowed and query.get("id_token_hint"):
            return 302, "", [("Location", after)]
        return 400, {"error": "invalid_request"}, []

    def jwks(self) -> dict[str, Any]:
        return {"keys": [self.key.as_dict(private=False)]}

    def query_client(self, client_id: str) -> _Client | None:
        return self.client if client_id == self.client.client_id else None

    def save_token(self, token: dict[str, Any], request: OAuth2Request) -> None:
        self.issued.append(dict(token))
        self._users_by_token[token["access_token"]] = request.user

    def create_oauth2_request(self, request: _Request) -> _Request:
        return request

    def handle_response(
        self, status: int, body: Any, headers: list[tuple[str, str]]
    ) -> tuple[int, Any, list[tuple[str, str]]]:
        return status, body, headers

    def send_signal(self, name: str, *args: Any, **kwargs: Any) -> None:
        """Authlib's hook for framework signals; nothing here listens."""

    def authorize(self, request: _Request) -> tuple[int, Any, list[tuple[str, str]]]:
        self.requests.append(dict(request.payload.data))
        grant = self.get_consent_grant(request, self.user)
        return self.create_authorization_response(request, self.user, grant)  # type: ignore[no-any-return]

    def token(self, request: _Request) -> tuple[int, Any, list[tuple[str, str]]]:
        status, body, headers = self.create_token_response(request)
        if status == 200 and self.spoil in ("signature", "claims"):
            body = {**body, "id_token": self._spoiled(body["id_token"])}
        return status, body, headers

    def _spoiled(self, id_token: str) -> str:
        header, claims, signature = id_token.split(".")
        if self.spoil == "signature":  # one bit of the signature flipped
            raw = bytearray(_unb64(signature))
            raw[len(raw) // 2] ^= 0x01
            return f"{header}.{claims}.{_b64(bytes(raw))}"
        if self.spoil == "claims":  # the claims changed under a valid signature
            decoded = json.loads(_unb64(claims))
            decoded["groups"] = ["sshtrail-admins"]
            return f"{header}.{_b64(json.dumps(decoded).encode())}.{signature}"
        raise AssertionError(f"unknown spoil {self.spoil!r}")


class _CodeGrant(AuthorizationCodeGrant):  # type: ignore[misc]
    TOKEN_ENDPOINT_AUTH_METHODS: ClassVar[list[str]] = ["client_secret_basic"]

    def save_authorization_code(self, code: str, request: _Request) -> None:
        data = request.payload.data
        server: Provider = self.server
        server._codes[code] = _Code(
            code,
            request.client.get_client_id(),
            data.get("redirect_uri", ""),
            request.scope,
            request.user,
            data.get("nonce"),
            data.get("code_challenge"),
            data.get("code_challenge_method"),
        )

    def query_authorization_code(self, code: str, client: _Client) -> _Code | None:
        server: Provider = self.server
        found = server._codes.get(code)
        return found if found is not None and found.client_id == client.client_id else None

    def delete_authorization_code(self, authorization_code: _Code) -> None:
        server: Provider = self.server
        server._codes.pop(authorization_code.code, None)

    def authenticate_user(self, authorization_code: _Code) -> User:
        return authorization_code.user


class _OpenIDCode(OpenIDCode):  # type: ignore[misc]
    def __init__(self, provider: Provider) -> None:
        super().__init__(require_nonce=True)
        self._provider = provider

    def exists_nonce(self, nonce: str, request: OAuth2Request) -> bool:
        return any(code.nonce == nonce for code in self._provider._codes.values())

    def resolve_client_private_key(self, client: _Client) -> RSAKey:
        if self._provider.spoil == "unpublished-key":
            return RSAKey.generate_key(2048, parameters={"kid": "signing-1"})
        return self._provider.key

    def get_client_claims(self, client: _Client) -> dict[str, Any]:
        claims: dict[str, Any] = {"iss": self._provider.issuer, "aud": [client.get_client_id()]}
        if self._provider.spoil == "audience":  # a token issued to another client
            claims["aud"] = ["another-client"]
        elif self._provider.spoil == "issuer":
            claims["iss"] = "https://another-provider.example"
        elif self._provider.spoil == "expired":
            claims["iat"], claims["exp"] = int(time.time()) - 7200, int(time.time()) - 3600
        return claims

    def get_encode_header(self, client: _Client) -> dict[str, str]:
        return {"alg": "RS256", "kid": "signing-1"}

    def generate_user_info(self, user: User, scope: str) -> UserInfo:
        info = UserInfo(sub=user.sub, preferred_username=user.name)
        if self._provider.groups_in_id_token:
            info["groups"] = user.groups
        if self._provider.spoil == "nonce":
            info["nonce"] = "a-nonce-of-another-sign-in"
        return info


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _handler(provider: Provider) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = urlsplit(self.path).path
            if path == "/.well-known/openid-configuration":
                self._answer(200, provider.discovery(), [])
            elif path == "/jwks":
                self._answer(200, provider.jwks(), [])
            elif path == "/userinfo":
                self._answer(*provider.userinfo(self.headers.get("Authorization", "")))
            elif path == "/logout":
                self._answer(*provider.logout(dict(parse_qsl(urlsplit(self.path).query))))
            elif path == "/authorize" and provider.sign_in_page and "signed-in" not in self.path:
                self._page(self.path + "&signed-in=1")
            elif path == "/authorize":
                self._answer(*provider.authorize(self._request("")))
            elif path == "/favicon.ico":  # what a browser asks every site for
                self._answer(204, "", [])
            else:
                self._answer(404, {"error": "not_found"}, [])

        def do_POST(self) -> None:
            length = int(self.headers.get("content-length", "0"))
            body = self.rfile.read(length).decode()
            if urlsplit(self.path).path == "/token":
                self._answer(*provider.token(self._request(body)))
            else:
                self._answer(404, {"error": "not_found"}, [])

        def _request(self, body: str) -> _Request:
            headers = {name: value for name, value in self.headers.items()}
            return _Request(self.command, provider.issuer + self.path, headers, body)

        def _answer(self, status: int, body: Any, headers: list[tuple[str, str]]) -> None:
            data = body if isinstance(body, str) else json.dumps(body)
            self.send_response(status)
            for name, value in headers:
                self.send_header(name, value)
            if data:
                self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data.encode())))
            self.end_headers()
            self.wfile.write(data.encode())

        def _page(self, onwards: str) -> None:
            """A sign-in page that moves on by itself: the browser's next request is
            then made by the provider's site, as after a real provider's login form."""
            page = f'<!doctype html><meta http-equiv="refresh" content="0; url={onwards}">'
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(page.encode())))
            self.end_headers()
            self.wfile.write(page.encode())

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet: pytest shows what failed."""

    return Handler


@contextmanager
def running(redirect_uris: list[str], host: str = "127.0.0.1") -> Iterator[Provider]:
    """The provider listening on a free port of loopback (named ``host`` in its URLs:
    ``localhost`` makes it another site than a console on 127.0.0.1)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    provider = Provider(f"http://{host}:{server.server_address[1]}", redirect_uris)
    server.RequestHandlerClass = _handler(provider)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield provider
    finally:
        server.shutdown()
        server.server_close()


def olga_on_t1_and_t2(store_url: str) -> None:
    """A migrated store at ``store_url`` with one closed session of operator ``olga`` on
    each of ``t1`` and ``t2``: what the OIDC tests' group scopes let an auditor see."""
    migrate.upgrade(store_url)
    engine = make_engine(store_url)
    try:
        with engine.begin() as conn:
            for n, target in enumerate(["t1", "t2"]):
                conn.execute(
                    SESSIONS.insert().values(
                        id=uuid.uuid4(),
                        operator="olga",
                        target=target,
                        started_at=dt.datetime(2026, 12, 1, 9, n, tzinfo=dt.UTC),
                        status="closed",
                        command=f"echo on {target}",
                        request="exec",
                        bytes_in=0,
                        bytes_out=0,
                        chunk_count=0,
                        gaps=[],
                    )
                )
    finally:
        engine.dispose()
