"""Signed-in console sessions, kept in the store (``console_sessions``, migration 0013).

A sign-in is a random 32-byte token in an HttpOnly, SameSite=Strict cookie
(``__Host-`` prefixed and Secure under TLS); the store keeps only its SHA-256, so
reading or copying the table signs nobody in. Every request looks its sign-in up
in the store: a restart of the console signs nobody out, any console process on
the same store serves any sign-in (no sticky sessions), and signing out or
``sshtrail web revoke`` ends it in every process at the next request. A cookie
that is not a well-formed token is refused before the store is asked.

A sign-in ends at its absolute expiry (``web.session_hours``) or after
``web.idle_timeout_min`` without use. When it was last used is written at most
every :data:`SEEN_EVERY_S` (less for a short idle timeout), not on every request:
the idle timeout is kept to within that much. Its CSRF token is derived from the
cookie's token (a hash under its own label), so every process gives the same one
and the store need not hold it.

What a sign-in holds open in this process (a live view's WebSocket) registers
with :meth:`SignIns.on_end` and is told when this process sees it end.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import datetime as dt
import hashlib
import logging
import re
import secrets
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, delete, insert, select, update
from sqlalchemy.engine import Connection, RowMapping
from sqlalchemy.exc import SQLAlchemyError
from starlette.exceptions import HTTPException

from consumer.web.auth import Auditor
from sshtrail.scope import Scope
from sshtrail.tables import CONSOLE_SESSIONS

log = logging.getLogger(__name__)

#: At most this often is a sign-in's last use written to the store.
SEEN_EVERY_S = 60.0
#: Ended sign-ins are kept this long for ``sshtrail web sessions --all``.
KEPT_ENDED = dt.timedelta(days=30)
#: The revocation reason of a sign-out.
SIGNED_OUT = "signed out"
#: What a cookie's token looks like: 32 bytes, base64url without padding.
TOKEN = re.compile(r"[A-Za-z0-9_-]{43}")

Clock = Callable[[], dt.datetime]


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass(slots=True)
class SignedIn:
    """A sign-in in use: who, with which rights, and until when."""

    id: str
    auditor: Auditor
    csrf: str
    expires: dt.datetime
    #: The provider's ID token (OIDC sign-ins): its sign-out's ``id_token_hint``.
    id_token: str | None = None


def token_hash(token: str | None) -> bytes | None:
    """The SHA-256 of a cookie's 32 random bytes; None when it is not such a token."""
    if not token or not TOKEN.fullmatch(token):
        return None
    try:
        raw = base64.urlsafe_b64decode(token + "=")
    except (binascii.Error, ValueError):
        return None
    return hashlib.sha256(raw).digest() if len(raw) == 32 else None


def _csrf(token: str) -> str:
    return hashlib.sha256(b"sshtrail console csrf\0" + token.encode()).hexdigest()


def rights_of(auditor: Auditor) -> dict[str, Any]:
    """What a sign-in grants, as its row keeps it."""
    return {
        "role": auditor.role,
        "operators": list(auditor.scope.operators),
        "targets": list(auditor.scope.targets),
        "terminate": auditor.may_terminate,
        "approve": auditor.may_approve,
        "export_files": auditor.may_export_files,
        "groups": list(auditor.groups),
    }


def _auditor(row: RowMapping) -> Auditor:
    rights = row["rights"]
    return Auditor(
        name=row["auditor"],
        role=str(rights["role"]),
        scope=Scope(tuple(rights["operators"]), tuple(rights["targets"])),
        via=row["via"],
        may_terminate=bool(rights["terminate"]),
        may_approve=bool(rights["approve"]),
        groups=tuple(rights["groups"]),
        may_export_files=bool(rights.get("export_files", False)),  # a row from before it
    )


class SignIns:
    """The console's sign-ins in the store; thread-safe (handlers run in a pool)."""

    def __init__(
        self,
        engine: Engine,
        idle_s: float,
        lifetime_s: float,
        still_allowed: Callable[[Auditor], bool] = lambda auditor: True,
        now: Clock = utc_now,
    ) -> None:
        self._engine = engine
        self._idle = dt.timedelta(seconds=idle_s)
        self._lifetime = dt.timedelta(seconds=lifetime_s)
        self._seen_every = dt.timedelta(seconds=min(SEEN_EVERY_S, idle_s / 4))
        self._still_allowed = still_allowed
        self._now = now
        self._ending: dict[str, list[Callable[[], None]]] = {}
        self._lock = threading.Lock()

    def create(self, auditor: Auditor, id_token: str | None = None) -> str:
        """A new sign-in for ``auditor``: the cookie's token (only its hash is stored)."""
        token = secrets.token_urlsafe(32)
        now = self._now()
        row = {
            "id": secrets.token_hex(16),
            "token_hash": token_hash(token),
            "auditor": auditor.name,
            "via": auditor.via,
            "rights": rights_of(auditor),
            "created": now,
            "seen": now,
            "expires": now + self._lifetime,
            "idle_s": int(self._idle.total_seconds()),
            "id_token": id_token,
        }
        with self._store() as conn:
            forgotten = CONSOLE_SESSIONS.c.expires < now - KEPT_ENDED
            conn.execute(delete(CONSOLE_SESSIONS).where(forgotten))
            conn.execute(insert(CONSOLE_SESSIONS).values(row))
        return token

    def get(self, token: str | None) -> SignedIn | None:
        """The sign-in of ``token`` if it is neither ended nor expired (it is used now)."""
        digest = token_hash(token)
        if digest is None or token is None:
            return None
        now = self._now()
        table = CONSOLE_SESSIONS
        with self._store() as conn:
            row = conn.execute(select(table).where(table.c.token_hash == digest)).mappings().first()
            if row is None:
                return None
            idle_end = row["seen"] + dt.timedelta(seconds=row["idle_s"])
            if row["revoked_at"] is not None or now >= row["expires"] or now >= idle_end:
                self._ended(row["id"])
                return None
            if now - row["seen"] >= self._seen_every:
                conn.execute(
                    update(table)
                    .where(table.c.id == row["id"], table.c.revoked_at.is_(None))
                    .values(seen=now)
                )
        auditor = _auditor(row)
        if not self._still_allowed(auditor):
            self.end(token, "-", "the account is no longer configured")
            return None
        return SignedIn(row["id"], auditor, _csrf(token), row["expires"], row["id_token"])

    def end(self, token: str | None, by: str, reason: str = SIGNED_OUT) -> None:
        """End the sign-in of ``token`` everywhere (signed out, or no longer allowed)."""
        digest = token_hash(token)
        if digest is None:
            return
        table = CONSOLE_SESSIONS
        with self._store() as conn:
            found = conn.execute(select(table.c.id).where(table.c.token_hash == digest)).first()
            conn.execute(
                update(table)
                .where(table.c.token_hash == digest, table.c.revoked_at.is_(None))
                .values(revoked_at=self._now(), revoked_by=by[:128], revoked_reason=reason[:500])
            )
        if found is not None:
            self._ended(found.id)

    def on_end(self, signed: SignedIn, call: Callable[[], None]) -> Callable[[], None]:
        """Have ``call`` called (on the thread that finds it ended) when this process
        sees ``signed`` end; what it returns takes ``call`` back."""
        with self._lock:
            self._ending.setdefault(signed.id, []).append(call)

        def forget() -> None:
            with self._lock:
                calls = self._ending.get(signed.id, [])
                if call in calls:
                    calls.remove(call)
                if not calls:
                    self._ending.pop(signed.id, None)

        return forget

    def left_s(self, signed: SignedIn) -> float:
        """Seconds until ``signed`` reaches its lifetime, however busy it is."""
        return max(0.0, (signed.expires - self._now()).total_seconds())

    def _ended(self, session_id: str) -> None:
        with self._lock:
            calls = self._ending.pop(session_id, [])
        for call in calls:
            call()

    @contextlib.contextmanager
    def _store(self) -> Iterator[Connection]:
        """A transaction on the store; one that cannot answer is a 503 (nobody can be
        told signed in or out)."""
        try:
            with self._engine.begin() as conn:
                yield conn
        except SQLAlchemyError as exc:
            raise _unavailable(exc) from None


def _unavailable(exc: SQLAlchemyError) -> HTTPException:
    log.error("the console's sign-ins cannot be read or written: %s", exc)
    return HTTPException(503, "the store cannot be reached: sign-ins cannot be checked")


@dataclass(frozen=True, slots=True)
class Listed:
    """A sign-in as ``sshtrail web sessions`` lists it."""

    id: str
    auditor: str
    via: str
    created: dt.datetime
    seen: dt.datetime
    expires: dt.datetime
    state: str
    revoked_by: str | None
    revoked_reason: str | None


def state_of(row: RowMapping, now: dt.datetime) -> str:
    """``active``, ``signed out``, ``revoked``, ``expired`` or ``idle``."""
    if row["revoked_at"] is not None:
        return SIGNED_OUT if row["revoked_reason"] == SIGNED_OUT else "revoked"
    if now >= row["expires"]:
        return "expired"
    if now >= row["seen"] + dt.timedelta(seconds=row["idle_s"]):
        return "idle"
    return "active"


def listed(conn: Connection, everything: bool, now: dt.datetime) -> list[Listed]:
    """The sign-ins in use (``everything``: those that ended too), newest first."""
    table = CONSOLE_SESSIONS
    query = select(table).order_by(table.c.created.desc(), table.c.id)
    if not everything:
        query = query.where(table.c.revoked_at.is_(None), table.c.expires > now)
    found = []
    for row in conn.execute(query).mappings():
        state = state_of(row, now)
        if everything or state == "active":
            found.append(
                Listed(
                    row["id"],
                    row["auditor"],
                    row["via"],
                    row["created"],
                    row["seen"],
                    row["expires"],
                    state,
                    row["revoked_by"],
                    row["revoked_reason"],
                )
            )
    return found


def revoke(
    conn: Connection,
    *,
    prefix: str | None,
    user: str | None,
    by: str,
    reason: str,
    now: dt.datetime,
) -> list[tuple[str, str]]:
    """End the sign-ins in use whose id starts with ``prefix`` (exactly one must) or of
    ``user``; their (id, auditor). ValueError when the prefix is unknown or ambiguous."""
    table = CONSOLE_SESSIONS
    live = [table.c.revoked_at.is_(None), table.c.expires > now]
    if prefix is not None:
        if not re.fullmatch(r"[0-9a-f]{4,32}", prefix):
            raise ValueError("a sign-in's id is 4 to 32 hex digits (sshtrail web sessions)")
        matching = table.c.id.startswith(prefix, autoescape=True)
        query = select(table.c.id, table.c.auditor).where(matching, *live)
        rows = conn.execute(query).all()
        if len(rows) > 1:
            raise ValueError(f"{prefix} names {len(rows)} sign-ins: give more of the id")
    else:
        query = select(table.c.id, table.c.auditor).where(table.c.auditor == user, *live)
        rows = conn.execute(query).all()
    if not rows:
        return []
    ids = [row.id for row in rows]
    conn.execute(
        update(table)
        .where(table.c.id.in_(ids), table.c.revoked_at.is_(None))
        .values(revoked_at=now, revoked_by=by[:128], revoked_reason=reason[:500])
    )
    return [(row.id, row.auditor) for row in rows]
