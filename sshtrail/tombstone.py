"""The tombstone of a deleted session: what it was, that its chain was intact, who or
which rule deleted it -- signed, so the deletion itself is evidence.

A tombstone is the canonical JSON :class:`Tombstone` (``body``), an Ed25519
signature over it by the deletion key (``retention.deletion_key``, made like the
control key when missing) and that key's public half. The row of ``deletions``
repeats the body's fields for queries; :func:`check` compares them with the
signed body, so an edited row reads as tampered, never as a different deletion.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import msgspec
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from sqlalchemy import select
from sqlalchemy.engine import Connection

from sshtrail.keyfiles import create_ed25519, load_ed25519_private
from sshtrail.settings import Settings
from sshtrail.tables import DELETIONS

#: ``deleted_by`` of a retention rule's deletions.
BY_RETENTION = "retention"


class Tombstone(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """What is signed of a deletion; times as ISO 8601 UTC, digests as hex."""

    session_id: str
    deleted_at: str
    operator: str | None
    target: str | None
    started_at: str | None
    ended_at: str | None
    chunk_count: int
    byte_count: int
    final_digest: str | None
    #: The gateway key that signed the session's end (hex), as the store recorded it.
    gateway_key: str | None
    verdict: str
    rule: str | None
    deleted_by: str
    reason: str


def key_path(settings: Settings) -> Path:
    return settings.state_file(settings.retention.deletion_key, "retention/deletion_ed25519_key")


def signing_key(settings: Settings) -> Ed25519PrivateKey:
    """The deletion key, created when missing (its public half beside it, ``.pub``)."""
    path = key_path(settings)
    if not path.exists():
        with contextlib.suppress(FileExistsError):  # another process made it just now
            create_ed25519(path, "sshtrail deletion key")
    return load_ed25519_private(path, "retention.deletion_key")


def _iso(value: dt.datetime | None) -> str | None:
    return value.astimezone(dt.UTC).isoformat() if value is not None else None


def tombstone_row(
    session: Mapping[str, Any],
    *,
    verdict: str,
    deleted_at: dt.datetime,
    rule: str | None,
    deleted_by: str,
    reason: str,
    signer: Ed25519PrivateKey,
) -> dict[str, Any]:
    """The ``deletions`` row of the session whose store row is ``session``, signed."""
    digest: bytes | None = session["final_digest"]
    stone = Tombstone(
        session_id=str(session["id"]),
        deleted_at=_iso(deleted_at) or "",
        operator=session["operator"],
        target=session["target"],
        started_at=_iso(session["started_at"]),
        ended_at=_iso(session["ended_at"]),
        chunk_count=session["chunk_count"],
        byte_count=session["bytes_in"] + session["bytes_out"],
        final_digest=digest.hex() if digest is not None else None,
        gateway_key=session["signing_key"].hex() if session["signing_key"] else None,
        verdict=verdict,
        rule=rule,
        deleted_by=deleted_by,
        reason=reason,
    )
    body = msgspec.json.encode(stone, order="sorted")
    return {
        "session_id": session["id"],
        "deleted_at": deleted_at,
        "operator": stone.operator,
        "target": stone.target,
        "started_at": session["started_at"],
        "ended_at": session["ended_at"],
        "chunk_count": stone.chunk_count,
        "byte_count": stone.byte_count,
        "final_digest": digest,
        "verdict": verdict,
        "rule": rule,
        "deleted_by": deleted_by,
        "reason": reason,
        "body": body,
        "signature": signer.sign(body),
        "key": signer.public_key().public_bytes_raw(),
    }


class Checked(msgspec.Struct, frozen=True):
    """A tombstone as read back: whether its signature holds and matches its row;
    ``problem`` says why not, or, when it holds, what could not be checked."""

    ok: bool
    problem: str
    stone: Tombstone | None


def check(row: Mapping[str, Any], trusted: bytes | None) -> Checked:
    """Check a ``deletions`` row: signed by ``trusted`` (the deletion key's public half;
    None: any key, said so), and the row saying what the signed body says."""
    try:
        Ed25519PublicKey.from_public_bytes(row["key"]).verify(row["signature"], row["body"])
        stone = msgspec.json.decode(row["body"], type=Tombstone)
    except (InvalidSignature, ValueError, msgspec.DecodeError) as exc:
        return Checked(
            False, f"the tombstone's signature does not hold ({type(exc).__name__})", None
        )
    if trusted is not None and row["key"] != trusted:
        return Checked(
            False, "the tombstone is signed by a key that is not the deletion key", stone
        )
    if (
        stone.session_id != str(row["session_id"])
        or stone.rule != row["rule"]
        or stone.deleted_by != row["deleted_by"]
        or stone.deleted_at != _iso(row["deleted_at"])
        or stone.chunk_count != row["chunk_count"]
    ):
        return Checked(False, "the tombstone's row differs from what was signed", stone)
    if trusted is None:
        return Checked(True, "no deletion key here to check the signer against", stone)
    return Checked(True, "", stone)


def public_key(settings: Settings) -> bytes | None:
    """The deletion key's public half, if the key exists (it is made by the first deletion)."""
    path = key_path(settings)
    if not path.exists():
        return None
    return load_ed25519_private(path, "retention.deletion_key").public_key().public_bytes_raw()


def describe(row: Mapping[str, Any]) -> str:
    """One line that says what deleted the session, when, and how its chain stood."""
    who = f"rule {row['rule']}" if row["rule"] else f"{row['deleted_by']} ({row['reason']})"
    at = row["deleted_at"].astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    digest = row["final_digest"].hex() if row["final_digest"] is not None else "none"
    chain = (
        f"chain was intact (hash {digest})"
        if row["verdict"] == "ok"
        else f"chain was {row['verdict']} (hash {digest})"
    )
    return f"deleted by {who} at {at}, {chain}, {row['chunk_count']} chunks"


def as_json(row: Mapping[str, Any], checked: Checked) -> dict[str, Any]:
    """A tombstone as ``deletions --json`` and ``verify --json`` have it."""
    return {
        "session": str(row["session_id"]),
        "deleted_at": _iso(row["deleted_at"]),
        "operator": row["operator"],
        "target": row["target"],
        "started_at": _iso(row["started_at"]),
        "ended_at": _iso(row["ended_at"]),
        "chunk_count": row["chunk_count"],
        "bytes": row["byte_count"],
        "final_digest": row["final_digest"].hex() if row["final_digest"] else None,
        "verdict": row["verdict"],
        "rule": row["rule"],
        "deleted_by": row["deleted_by"],
        "reason": row["reason"],
        "signature_ok": checked.ok,
        "signature_problem": (checked.problem or None) if not checked.ok else None,
        "signature_note": (checked.problem or None) if checked.ok else None,
    }


def find(conn: Connection, prefix: str) -> list[dict[str, Any]]:
    """The tombstones whose session id starts with ``prefix`` (hex digits; at most two:
    enough to tell one from several)."""
    digits = prefix.strip().lower().replace("-", "")
    if not digits or len(digits) > 32 or any(c not in "0123456789abcdef" for c in digits):
        return []
    low, high = uuid.UUID(digits.ljust(32, "0")), uuid.UUID(digits.ljust(32, "f"))
    query = select(DELETIONS).where(DELETIONS.c.session_id.between(low, high)).limit(2)
    return [dict(row) for row in conn.execute(query).mappings()]
