"""Who is asking: auditor accounts, CSRF tokens, login limits.

Signed-in sessions are kept in the store (``consumer/web/signins.py``). Each
has its own CSRF token, which every form carries and every POST must send
back; the login form, before any session, uses a double-submit token (a
cookie and a field that must agree).

Failed logins are limited per address and per account name. An attempt is
counted *before* its password is checked, under one lock: attempts sent at
once cannot all pass a check made before any of them failed, and one over
the limit costs no scrypt. A right password takes its count back.

Behind a trusted reverse proxy (``web.trusted_proxies``), the proxy's header
names the auditor on every request instead; the name must still be one of
the configured ``auditors``, which give the role and scopes.
"""

from __future__ import annotations

import hmac
import ipaddress
import secrets
import threading
import time
from collections import deque
from dataclasses import dataclass, field

from sshtrail.passwords import hash_password, verify_password
from sshtrail.scope import Scope
from sshtrail.settings import AuditorSettings, ConsoleRights, Settings

#: The window failed logins are counted over.
FAILURE_WINDOW_S = 15 * 60


@dataclass(frozen=True, slots=True)
class Auditor:
    name: str
    role: str
    scope: Scope
    #: How they are signed in: ``password``, ``proxy`` or ``oidc`` (consumer/web/oidc.py).
    via: str = "password"
    #: May end active sessions in their scope.
    may_terminate: bool = False
    #: May approve or deny commands held for review in their scope (not their own).
    may_approve: bool = False
    #: Their console groups (``auditors.groups``): who may moderate is decided by the
    #: gateway's ``[[moderation]]`` tables, by name or group.
    groups: tuple[str, ...] = ()
    #: May download transferred files from a session page (``auditors.export_files``,
    #: and only while ``transfers.content_export`` is on).
    may_export_files: bool = False

    @property
    def admin(self) -> bool:
        return self.role == "admin"


@dataclass(slots=True)
class _Failures:
    times: deque[float] = field(default_factory=deque)


class Accounts:
    """The configured auditors, checked in constant time whether or not a name exists."""

    def __init__(self, settings: Settings) -> None:
        self._by_name = {entry.name: entry for entry in settings.auditors}
        self._dummy = hash_password(secrets.token_hex(16))

    def __len__(self) -> int:
        return len(self._by_name)

    def named(self, name: str, via: str = "password") -> Auditor | None:
        entry = self._by_name.get(name)
        return None if entry is None else _auditor(entry, via)

    def still_allowed(self, auditor: Auditor) -> bool:
        """Whether a sign-in made before still stands: a local account's only while the
        account is configured (its rights are those granted at sign-in)."""
        return auditor.via != "password" or auditor.name in self._by_name

    def check(self, name: str, password: str) -> Auditor | None:
        """The auditor whose password this is, or None. Slow on purpose (scrypt)."""
        entry = self._by_name.get(name)
        stored = entry.password_hash if entry is not None and entry.password_hash else self._dummy
        good = verify_password(stored, password)
        if entry is None or stored is self._dummy or not good:
            return None
        return _auditor(entry, "password")


def _auditor(entry: AuditorSettings, via: str) -> Auditor:
    return auditor_with(entry.name, entry, via, tuple(entry.groups))


def auditor_with(name: str, rights: ConsoleRights, via: str, groups: tuple[str, ...]) -> Auditor:
    """``name`` in the console with ``rights``: a local account's, or those of the
    identity provider's group that let them in (consumer/web/oidc.py)."""
    scope = Scope(tuple(rights.operators), tuple(rights.targets))
    return Auditor(
        name,
        rights.role,
        scope,
        via,
        rights.terminate,
        rights.approve,
        groups,
        may_export_files=rights.export_files,
    )


class LoginLimit:
    """Failed logins per address and per account name within :data:`FAILURE_WINDOW_S`,
    counted when an attempt starts (see the module's docstring)."""

    def __init__(self, allowed: int) -> None:
        self._allowed = allowed
        self._failures: dict[str, _Failures] = {}
        self._told: dict[str, float] = {}
        self._lock = threading.Lock()

    def first_refusal(self, address: str, name: str) -> bool:
        """Whether a refusal for this address and name is the first in a minute: the
        access log records those, so a flood of refused attempts cannot fill it."""
        key = f"{address}\n{name}"
        now = time.monotonic()
        with self._lock:
            if len(self._told) > 100_000:
                self._told = {k: t for k, t in self._told.items() if now - t < 60}
            if now - self._told.get(key, -60.0) < 60:
                return False
            self._told[key] = now
            return True

    def reserve(self, address: str, name: str) -> Attempt | None:
        """Count an attempt as failed before it is checked, or None (and nothing
        counted) when the address or the name has used up its failures."""
        now = time.monotonic()
        keys = _keys(address, name)
        with self._lock:
            if any(self._count(key) >= self._allowed for key in keys):
                return None
            if len(self._failures) > 100_000:  # a flood of names: forget the quiet ones
                for key in [k for k in self._failures if self._count(k) == 0]:
                    del self._failures[key]
            for key in keys:
                self._failures.setdefault(key, _Failures()).times.append(now)
        return Attempt(self, keys, now)

    def _take_back(self, attempt: Attempt) -> None:
        with self._lock:
            for key in attempt.keys:
                entry = self._failures.get(key)
                if entry is not None and attempt.at in entry.times:
                    entry.times.remove(attempt.at)

    def _count(self, key: str) -> int:
        entry = self._failures.get(key)
        if entry is None:
            return 0
        horizon = time.monotonic() - FAILURE_WINDOW_S
        while entry.times and entry.times[0] < horizon:
            entry.times.popleft()
        return len(entry.times)


@dataclass(frozen=True, slots=True)
class Attempt:
    """A sign-in attempt, counted as a failure until :meth:`succeeded` says otherwise."""

    limit: LoginLimit
    keys: tuple[str, str]
    at: float

    def succeeded(self) -> None:
        self.limit._take_back(self)


def _keys(address: str, name: str) -> tuple[str, str]:
    return f"address:{address}", f"name:{name}"


def same_token(given: str | None, expected: str | None) -> bool:
    """Whether a CSRF token sent back is the one given out (constant time)."""
    if not given or not expected:
        return False
    return hmac.compare_digest(given.encode(), expected.encode())


class Proxies:
    """The reverse proxies whose identity header is believed."""

    def __init__(self, settings: Settings) -> None:
        self.header = settings.web.proxy_user_header.lower()
        self._networks = [
            ipaddress.ip_network(proxy, strict=False) for proxy in settings.web.trusted_proxies
        ]

    def __bool__(self) -> bool:
        return bool(self._networks)

    def trusted(self, address: str | None) -> bool:
        if not address or not self._networks:
            return False
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in network for network in self._networks)
