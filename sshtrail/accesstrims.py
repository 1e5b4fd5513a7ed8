"""Signed checkpoints where the access log's own retention dropped a chain's oldest rows.

``retention.access_log_keep`` drops rows of the access log older than it
(consumer/accesstrim.py). A chain checked from row 0 would then read as rows
*deleted*; so before dropping rows ``first..n`` of a chain, the trim writes, in
the same transaction, a **checkpoint**: the chain, ``n`` and the digest of row
``n``, when, the cutoff, the setting and who trimmed -- as canonical JSON signed
with the deletion key (``retention.deletion_key``, the key of the tombstones).
:func:`sshtrail.accesschain.check` then starts each chain at its latest good
checkpoint: the first kept row must follow its digest, and a head published
for row ``n`` must name the same digest.

A database writer cannot sign, so a checkpoint they edit, or make with another
key, is *altered* and the chain is checked from the one before it (or from row
0): the rows it claims were dropped read as *deleted*. Deleting the latest
checkpoint does the same. Rows are only dropped after the dropped span is
checked link by link (consumer/accesstrim.py), so a trim never launders a row
changed before it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

import msgspec
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from sqlalchemy import select
from sqlalchemy.engine import Connection

from sshtrail import tombstone
from sshtrail.keyfiles import load_ed25519_public, public_path
from sshtrail.settings import Settings
from sshtrail.tables import ACCESS_LOG_TRIMS

#: What a checkpoint's signature covers before its body: no other signed thing of
#: sshtrail starts so (a tombstone signed by the same key does not).
CHECKPOINT_CONTEXT = b"sshtrail access-log checkpoint v1\x00"


class Checkpoint(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """What is signed of a trim; times as ISO 8601 UTC, the digest as hex."""

    chain: str
    first: int
    n: int
    digest: str
    trimmed_at: str
    cutoff: str
    keep: str
    trimmed_by: str


@dataclass(frozen=True, slots=True)
class Trim:
    """A checkpoint as read back; ``problem`` says why it cannot be trusted ("" when
    its signature holds, by a trusted key, and its row says what was signed)."""

    chain: str
    first: int
    n: int
    digest: bytes
    trimmed_at: dt.datetime
    keep: str
    problem: str = ""


def _iso(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).isoformat()


def checkpoint_row(
    *,
    chain: str,
    first: int,
    n: int,
    digest: bytes,
    trimmed_at: dt.datetime,
    cutoff: dt.datetime,
    keep: str,
    trimmed_by: str,
    signer: Ed25519PrivateKey,
) -> dict[str, Any]:
    """The ``access_log_trims`` row of dropping rows ``first..n`` of ``chain``, signed."""
    body = msgspec.json.encode(
        Checkpoint(
            chain=chain,
            first=first,
            n=n,
            digest=digest.hex(),
            trimmed_at=_iso(trimmed_at),
            cutoff=_iso(cutoff),
            keep=keep,
            trimmed_by=trimmed_by,
        ),
        order="sorted",
    )
    return {
        "chain": chain,
        "n": n,
        "digest": digest,
        "first": first,
        "trimmed_at": trimmed_at,
        "cutoff": cutoff,
        "keep": keep,
        "trimmed_by": trimmed_by,
        "body": body,
        "signature": signer.sign(CHECKPOINT_CONTEXT + body),
        "key": signer.public_key().public_bytes_raw(),
    }


def checked(row: Mapping[str, Any], trusted: Collection[bytes]) -> Trim:
    """The checkpoint ``row`` as a :class:`Trim`, its problem said if it has one."""
    trim = Trim(row["chain"], row["first"], row["n"], row["digest"], row["trimmed_at"], row["keep"])
    try:
        Ed25519PublicKey.from_public_bytes(row["key"]).verify(
            row["signature"], CHECKPOINT_CONTEXT + row["body"]
        )
        signed = msgspec.json.decode(row["body"], type=Checkpoint)
    except (InvalidSignature, ValueError, TypeError, msgspec.DecodeError) as exc:
        return _with(trim, f"its signature does not hold ({type(exc).__name__})")
    if row["key"] not in trusted:
        why = "no deletion key here to check it against" if not trusted else "another key"
        return _with(trim, f"signed by a key that is not the deletion key ({why})")
    if (signed.chain, signed.first, signed.n, signed.digest, signed.keep) != (
        trim.chain,
        trim.first,
        trim.n,
        trim.digest.hex(),
        trim.keep,
    ) or signed.trimmed_at != _iso(trim.trimmed_at):
        return _with(trim, "its row differs from what was signed")
    return trim


def _with(trim: Trim, problem: str) -> Trim:
    return Trim(trim.chain, trim.first, trim.n, trim.digest, trim.trimmed_at, trim.keep, problem)


def stored(conn: Connection, trusted: Collection[bytes]) -> list[Trim]:
    """Every checkpoint of the store, checked; by chain, then n."""
    query = select(ACCESS_LOG_TRIMS).order_by(ACCESS_LOG_TRIMS.c.chain, ACCESS_LOG_TRIMS.c.n)
    return [checked(dict(row), trusted) for row in conn.execute(query).mappings()]


def latest(conn: Connection, chain: str) -> tuple[int, bytes] | None:
    """The place and digest of the last row dropped from ``chain`` so far, if any."""
    query = (
        select(ACCESS_LOG_TRIMS.c.n, ACCESS_LOG_TRIMS.c.digest)
        .where(ACCESS_LOG_TRIMS.c.chain == chain)
        .order_by(ACCESS_LOG_TRIMS.c.n.desc())
        .limit(1)
    )
    found = conn.execute(query).first()
    return (found.n, found.digest) if found is not None else None


def trusted_keys(settings: Settings) -> set[bytes]:
    """The deletion key's public half (its ``.pub`` file, or the key itself), when it is
    here: what checkpoints must be signed by."""
    path = tombstone.key_path(settings)
    if public_path(path).exists():
        return {load_ed25519_public(public_path(path))}
    key = tombstone.public_key(settings)
    return {key} if key is not None else set()
