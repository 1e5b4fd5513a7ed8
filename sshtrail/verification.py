"""A session's verification as every reader reports it: one answer, from the stored bytes.

``verify``, ``show``, ``sessions`` (and the web console) all ask here, so
they cannot disagree. The answer is :func:`~sshtrail.chain.verify_chain`
over the chunks as stored, told what the store saw as it wrote them (an end
it saw whose chunk is gone is a cut tail: tampering), against the trusted
gateway keys.

For a list of sessions, recomputing every chain would read every byte of
every session listed. The store keeps what it found when it wrote each
session (``sessions.verified``), and a trigger sets that to NULL whenever a
stored chunk is changed or deleted (migration 0003); a session is taken at
its stored word only while that word still stands, its chunk count and
last seq still match what is stored, and the key it was signed with is
trusted now. Anything else is checked again from the bytes.
"""

from __future__ import annotations

import base64
import hashlib
import uuid
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import Any

import msgspec
from sqlalchemy import func, select
from sqlalchemy.engine import Connection

from sshtrail import interrupted, queries
from sshtrail.chain import Known, Status, Verdict, ok_verdict, verify_chain
from sshtrail.errors import ConfigError
from sshtrail.keyfiles import load_ed25519_public, public_path
from sshtrail.seqranges import Gaps
from sshtrail.settings import Settings
from sshtrail.tables import CHUNKS


def known(row: Mapping[str, Any]) -> Known:
    """What the store saw of a session, from its row (``gaps`` as
    :func:`~sshtrail.queries.session` reads them)."""
    gaps: Gaps = row["gaps"]
    return Known(row["end_reason"] is not None, row["last_seq"], gaps.ranges)


def verify_session(
    conn: Connection, row: Mapping[str, Any], trusted_keys: Collection[bytes]
) -> Verdict:
    """The session's verdict, recomputed from every stored chunk."""
    gaps: Gaps = row["gaps"]
    if gaps.problem is not None and not gaps.too_large:
        # The store writes only sorted ranges below the last seq: the row was edited, and
        # what the store saw can no longer be told from it.
        return Verdict(
            Status.TAMPERED,
            f"the session's record of missing chunks is not one the store writes: {gaps.problem}",
        )
    stored = queries.stored_chunks(conn, row["id"])
    if gaps.too_large:
        # Judged from the chunks alone; said, since what the store saw is not used.
        verdict = verify_chain(stored, trusted_keys)
        note = f"; the store's record of missing chunks was not read ({gaps.problem})"
        return msgspec.structs.replace(verdict, detail=verdict.detail + note)
    return _ended_by_store(verify_chain(stored, trusted_keys, known(row)), row)


def _ended_by_store(verdict: Verdict, row: Mapping[str, Any]) -> Verdict:
    """A session without an end that the store marked interrupted: still unsigned, and
    said plainly that the end is the store's (sshtrail/interrupted.py)."""
    marked, heard = row.get("interrupted_at"), row.get("ended_at")
    if verdict.status is not Status.UNSIGNED or not interrupted.marked_by_store(
        row.get("end_reason"), marked, heard
    ):
        return verdict
    assert marked is not None
    detail = interrupted.store_detail(marked, heard)
    return msgspec.structs.replace(verdict, detail=detail, interrupted=interrupted.BY_STORE)


def session_verdicts(
    conn: Connection, rows: Sequence[Mapping[str, Any]], trusted_keys: Collection[bytes]
) -> dict[uuid.UUID, Verdict]:
    """The verdict of each of ``rows``, recomputed only where the stored word does not hold."""
    ids = [row["id"] for row in rows]
    counts: dict[uuid.UUID, tuple[int, int | None]] = {}
    for start in range(0, len(ids), 500):
        query = (
            select(CHUNKS.c.session_id, func.count(), func.max(CHUNKS.c.seq))
            .where(CHUNKS.c.session_id.in_(ids[start : start + 500]))
            .group_by(CHUNKS.c.session_id)
        )
        counts.update({sid: (count, last) for sid, count, last in conn.execute(query)})
    verdicts = {}
    for row in rows:
        stored = counts.get(row["id"], (0, None))
        verdicts[row["id"]] = _as_stored(row, stored, trusted_keys) or verify_session(
            conn, row, trusted_keys
        )
    return verdicts


def _as_stored(
    row: Mapping[str, Any], stored: tuple[int, int | None], trusted_keys: Collection[bytes]
) -> Verdict | None:
    """The verdict the store's word gives, when it still stands; None to check again."""
    if stored != (row["chunk_count"], row["last_seq"]) or row["verified"] is not True:
        return None
    if row["end_reason"] is None or row["gaps"] or row["signing_key"] not in trusted_keys:
        return None
    return ok_verdict(
        row["chunk_count"], row["end_reason"], row["final_digest"], row["signing_key"]
    )


def fingerprint(key: bytes) -> str:
    """An Ed25519 public key as OpenSSH shows it: ``SHA256:...``."""
    blob = b"".join(len(part).to_bytes(4, "big") + part for part in (b"ssh-ed25519", key))
    digest = base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")
    return f"SHA256:{digest}"


def trusted_gateway_keys(settings: Settings, files: list[Path] | None = None) -> dict[bytes, str]:
    """The gateway keys whose signatures count, each with where it came from: the key
    files given, else the gateway recording key of these settings."""
    if files:
        return {load_ed25519_public(path): str(path) for path in files}
    own = settings.state_file(settings.gateway.signing_key, "gateway/recording_ed25519_key")
    if not public_path(own).exists():
        raise ConfigError(
            f"no trusted gateway key: {public_path(own)} does not exist; pass --trust KEYFILE"
        )
    return {load_ed25519_public(own): str(public_path(own))}


def known_gateway_keys(settings: Settings) -> dict[bytes, str]:
    """The configured trusted keys, or none (then every signature reads as untrusted,
    and the verdict says so)."""
    try:
        return trusted_gateway_keys(settings)
    except ConfigError:
        return {}
