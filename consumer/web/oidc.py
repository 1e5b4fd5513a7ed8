"""The console as an OpenID Connect relying party: authorization code flow with PKCE.

A sign-in starts with :meth:`RelyingParty.start`: a fresh ``state``, ``nonce`` and
PKCE verifier (S256) are kept here, in this process's memory, under the state, with
a random token the browser keeps in a cookie; the provider's redirect back is
:meth:`RelyingParty.finish`, which takes the pending sign-in out before anything
else (each state is used once, and only by the browser it was given to), exchanges
the code with the verifier, and believes the ID token only when its signature
checks against the provider's published keys (an asymmetric algorithm the provider
advertises; never ``none`` or a shared secret) and its ``iss``, ``aud``, ``exp``,
``iat`` and ``nonce`` are what this sign-in expects. Who the user is in the console
comes from the first ``[[web.oidc.groups]]`` table naming one of their groups; no
table, no sign-in. Where the ID token does not carry the groups claim, it is read from
the provider's ``userinfo_endpoint`` with the sign-in's access token, and believed only
for the same ``sub``.

Signing out of the console ends the provider's session too where the discovery
document advertises an ``end_session_endpoint`` (RP-initiated logout 1.0): the
browser is sent there with the sign-in's ID token as ``id_token_hint`` and the
console's sign-in page as ``post_logout_redirect_uri`` (:meth:`RelyingParty.logout_url`).

Every refusal is a :class:`Refused` carrying the reason the access log records.
The discovery document and the keys are fetched when first needed and kept; keys
are fetched again once when a token names a key id not among them (the provider
rotated its keys).
"""

from __future__ import annotations

import hmac
import re
import secrets
import threading
import time
from collections import Counter, OrderedDict
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import httpx2
from authlib.integrations.base_client import OAuthError
from authlib.integrations.httpx_client import OAuth2Client
from authlib.oidc.core import CodeIDToken
from joserfc import jwt
from joserfc.errors import InvalidKeyIdError, JoseError
from joserfc.jwk import KeySet
from joserfc.jws import JWSRegistry

from consumer.web.auth import Auditor, auditor_with
from sshtrail.settings import OidcSettings

#: How long a started sign-in may take at the provider.
PENDING_S = 10 * 60
#: Started sign-ins kept at most; the oldest goes first beyond it.
MAX_PENDING = 10_000
#: Started sign-ins kept per client address: one address cannot push out everyone's.
MAX_PENDING_PER_ADDRESS = 20
#: Signature algorithms believed: public-key ones only, whatever the provider says.
ASYMMETRIC = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512")
#: What an auditor's name may be (as ``auditors.name``).
NAME = re.compile(r"[A-Za-z0-9._@+-]{1,128}")
#: Seconds an HTTP call to the provider may take.
HTTP_TIMEOUT_S = 10.0


class Refused(Exception):
    """A sign-in through the provider that is not let in; ``reason`` goes to the
    access log, ``name`` is who the provider said it was (when it said so, and could
    be believed)."""

    def __init__(self, reason: str, name: str = "-", status: int = 403) -> None:
        super().__init__(reason)
        self.reason = reason
        self.name = name
        self.status = status


@dataclass(frozen=True, slots=True)
class Started:
    """Where to send the browser, and the token its cookie must bring back."""

    url: str
    browser: str


@dataclass(frozen=True, slots=True)
class _Pending:
    address: str
    browser: str
    nonce: str
    verifier: str
    redirect_uri: str
    wanted: str
    created: float


@dataclass(frozen=True, slots=True)
class Finished:
    """A sign-in let in: the auditor, where they wanted to go, and what to log."""

    auditor: Auditor
    wanted: str
    detail: str
    #: The ID token as issued: the ``id_token_hint`` of the sign-out.
    id_token: str = ""


class RelyingParty:
    """The console's side of ``[web.oidc]``; thread-safe (handlers run in a pool)."""

    def __init__(self, settings: OidcSettings, http: httpx2.Client | None = None) -> None:
        self._settings = settings
        self._http = http or httpx2.Client(timeout=HTTP_TIMEOUT_S, follow_redirects=False)
        self._pending: OrderedDict[str, _Pending] = OrderedDict()
        self._per_address: Counter[str] = Counter()
        self._metadata: dict[str, Any] | None = None
        self._keys: KeySet | None = None
        self._lock = threading.Lock()

    @property
    def label(self) -> str:
        return self._settings.label

    def close(self) -> None:
        self._http.close()

    def start(self, redirect_uri: str, wanted: str, address: str) -> Started:
        """A new sign-in from ``address``: the provider's authorization URL with state,
        nonce and PKCE; :class:`Refused` (429) when the address has too many open."""
        endpoint = str(self._discovered()["authorization_endpoint"])
        state, nonce = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        verifier, browser = secrets.token_urlsafe(48), secrets.token_urlsafe(32)
        with self._client(redirect_uri) as client:
            url, _ = client.create_authorization_url(
                endpoint, state=state, code_verifier=verifier, nonce=nonce
            )
        now = time.monotonic()
        pending = _Pending(address, browser, nonce, verifier, redirect_uri, wanted, now)
        with self._lock:
            self._forget_stale(now)
            if self._per_address[address] >= MAX_PENDING_PER_ADDRESS:
                raise Refused("too many sign-ins started from this address", status=429)
            if len(self._pending) >= MAX_PENDING:
                self._taken(next(iter(self._pending)))
            self._pending[state] = pending
            self._per_address[address] += 1
        return Started(str(url), browser)

    def finish(self, state: str, code: str, browser: str | None) -> Finished:
        """The auditor the provider's answer signs in; :class:`Refused` otherwise."""
        with self._lock:
            pending = self._taken(state)
        if pending is None or time.monotonic() - pending.created > PENDING_S:
            raise Refused("unknown, used or expired state", status=400)
        if not browser or not hmac.compare_digest(browser.encode(), pending.browser.encode()):
            raise Refused("state started in another browser", status=400)
        if not code:
            raise Refused("the provider sent no code", status=400)
        token = self._exchange(code, pending)
        claims = self._id_token(token, pending.nonce)
        auditor, detail = self._mapped(claims, token)
        return Finished(auditor, pending.wanted, detail, str(token["id_token"]))

    def logout_url(self, id_token: str, after: str) -> str | None:
        """Where to send the browser to end the provider's session (and come back to
        ``after``); None when the provider advertises no ``end_session_endpoint`` or
        cannot be reached (the console's sign-out stands either way)."""
        try:
            endpoint = self._discovered().get("end_session_endpoint")
        except Refused:
            return None
        if not isinstance(endpoint, str) or not endpoint.startswith(("https://", "http://")):
            return None
        query = urlencode(
            {
                "id_token_hint": id_token,
                "post_logout_redirect_uri": after,
                "client_id": self._settings.client_id,
            }
        )
        return f"{endpoint}{'&' if '?' in endpoint else '?'}{query}"

    def _client(self, redirect_uri: str) -> OAuth2Client:
        return OAuth2Client(
            client_id=self._settings.client_id,
            client_secret=self._settings.client_secret or None,
            scope=" ".join(self._settings.scopes),
            redirect_uri=redirect_uri,
            code_challenge_method="S256",
            timeout=HTTP_TIMEOUT_S,
            token_endpoint_auth_method=(
                "client_secret_basic" if self._settings.client_secret else "none"
            ),
        )

    def _exchange(self, code: str, pending: _Pending) -> dict[str, Any]:
        endpoint = str(self._discovered()["token_endpoint"])
        with self._client(pending.redirect_uri) as client:
            try:
                token = client.fetch_token(endpoint, code=code, code_verifier=pending.verifier)
            except httpx2.HTTPError as exc:
                unreachable = f"the token endpoint could not be reached: {exc}"
                raise Refused(unreachable, status=502) from None
            except (OAuthError, ValueError) as exc:
                raise Refused(f"the provider refused the code: {exc}") from None
        if not isinstance(token, dict) or not isinstance(token.get("id_token"), str):
            raise Refused("the provider sent no ID token")
        return dict(token)

    def _id_token(self, token: dict[str, Any], nonce: str) -> CodeIDToken:
        metadata = self._discovered()
        advertised = metadata.get("id_token_signing_alg_values_supported") or ["RS256"]
        algorithms = [alg for alg in ASYMMETRIC if alg in advertised]
        registry = JWSRegistry(algorithms=algorithms)
        try:
            try:
                decoded = jwt.decode(token["id_token"], self._key_set(), registry=registry)
            except InvalidKeyIdError:
                decoded = jwt.decode(token["id_token"], self._key_set(True), registry=registry)
        except (JoseError, ValueError) as exc:
            raise Refused(f"ID token not believed: {_said(exc)}") from None
        options: dict[str, Any] = {
            "iss": {"essential": True, "value": metadata["issuer"]},
            "aud": {"essential": True, "value": self._settings.client_id},
        }
        params = {
            "nonce": nonce,
            "client_id": self._settings.client_id,
            "access_token": token.get("access_token"),
        }
        claims = CodeIDToken(decoded.claims, decoded.header, options, params)
        try:
            claims.validate(leeway=self._settings.leeway_s)
        except JoseError as exc:
            raise Refused(f"ID token not valid: {_said(exc)}") from None
        return claims

    def _mapped(self, claims: CodeIDToken, token: dict[str, Any]) -> tuple[Auditor, str]:
        name = claims.get(self._settings.name_claim)
        if not isinstance(name, str) or not NAME.fullmatch(name):
            raise Refused(f"the ID token's {self._settings.name_claim} is not an auditor name")
        said = claims.get(self._settings.groups_claim)
        if said is None:
            said = self._userinfo_groups(str(claims["sub"]), token.get("access_token"))
        groups = _groups(said)
        detail = f"oidc sub={str(claims['sub'])[:128]} groups={','.join(groups)[:1024]}"
        mapping = next((m for m in self._settings.groups if m.group in groups), None)
        if mapping is None:
            raise Refused(f"no [[web.oidc.groups]] maps their groups; {detail}", name=name)
        return auditor_with(name, mapping, "oidc", groups), f"{detail} as={mapping.group}"

    def _userinfo_groups(self, sub: str, access_token: object) -> object:
        """The groups claim of the provider's userinfo answer, for the ID token's
        ``sub`` only (OIDC Core 5.3.4); None without an endpoint or access token."""
        endpoint = self._discovered().get("userinfo_endpoint")
        if not isinstance(endpoint, str) or not isinstance(access_token, str):
            return None
        try:
            answer = self._http.get(endpoint, headers={"Authorization": f"Bearer {access_token}"})
            answer.raise_for_status()
            info = answer.json()
        except (httpx2.HTTPError, ValueError) as exc:
            raise Refused(f"the userinfo endpoint could not be read: {exc}", status=502) from None
        if not isinstance(info, dict) or info.get("sub") != sub:
            raise Refused("the userinfo answer is not about the ID token's sub")
        return info.get(self._settings.groups_claim)

    def _discovered(self) -> dict[str, Any]:
        with self._lock:
            if self._metadata is not None:
                return self._metadata
        metadata = self._get_json(self._settings.discovery_url, "discovery document")
        for key in ("issuer", "authorization_endpoint", "token_endpoint", "jwks_uri"):
            if not isinstance(metadata.get(key), str):
                raise Refused(f"the discovery document has no {key}", status=502)
        with self._lock:
            self._metadata = metadata
        return metadata

    def _key_set(self, again: bool = False) -> KeySet:
        with self._lock:
            if self._keys is not None and not again:
                return self._keys
        document = self._get_json(str(self._discovered()["jwks_uri"]), "key set")
        try:
            keys = KeySet.import_key_set(document)  # type: ignore[arg-type]
        except (JoseError, ValueError, KeyError, TypeError) as exc:
            raise Refused(f"the provider's key set cannot be read: {exc}", status=502) from None
        with self._lock:
            self._keys = keys
        return keys

    def _get_json(self, url: str, what: str) -> dict[str, Any]:
        try:
            answer = self._http.get(url)
            answer.raise_for_status()
            document = answer.json()
        except (httpx2.HTTPError, ValueError) as exc:
            raise Refused(f"the provider's {what} could not be read: {exc}", status=502) from None
        if not isinstance(document, dict):
            raise Refused(f"the provider's {what} is not a JSON object", status=502)
        return document

    def _taken(self, state: str) -> _Pending | None:
        """The pending sign-in of ``state``, out of the books (under the lock)."""
        pending = self._pending.pop(state, None)
        if pending is not None:
            self._per_address[pending.address] -= 1
            if not self._per_address[pending.address]:
                del self._per_address[pending.address]
        return pending

    def _forget_stale(self, now: float) -> None:
        while self._pending:
            state, oldest = next(iter(self._pending.items()))
            if now - oldest.created <= PENDING_S:
                return
            self._taken(state)


def _groups(value: object) -> tuple[str, ...]:
    """The groups a claim holds: a list of names, or one name; anything else, none."""
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list):
        return tuple(item for item in value if isinstance(item, str))
    return ()


def _said(exc: Exception) -> str:
    return f"{type(exc).__name__}: {exc}"[:256]
