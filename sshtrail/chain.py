"""The hash chain of a session: building it as chunks are written, checking it later.

A writer numbers chunks 0, 1, 2 ... and links each to the digest of the one
before; the end chunk is signed. :func:`verify_chain` recomputes all of that
from the stored bytes and names the first thing that does not hold, so an
altered, removed or reordered chunk -- the last one included -- is reported.
"""

from __future__ import annotations

import enum
import uuid
from collections.abc import Collection, Iterable, Sequence

import msgspec
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from sshtrail.errors import WireError
from sshtrail.events import End, Event
from sshtrail.wire import (
    GENESIS,
    Chunk,
    chain_digest,
    decode_chunk,
    encode_chunk,
    signature_message,
)


class ChainWriter:
    """Encodes the chunks of one session in order, keeping ``seq`` and ``prev``."""

    def __init__(self, session_id: uuid.UUID, signer: Ed25519PrivateKey) -> None:
        self.session_id = session_id
        self._signer = signer
        self.seq = 0
        self.prev = GENESIS
        self.closed = False

    @property
    def public_key(self) -> bytes:
        return self._signer.public_key().public_bytes_raw()

    def encode(self, events: Sequence[Event]) -> bytes:
        """Encode the next chunk; a chunk ending in ``end`` closes the chain."""
        if self.closed:
            raise ValueError(f"session {self.session_id} already ended")
        data = encode_chunk(self.session_id, self.seq, self.prev, events, self._signer)
        self.prev = chain_digest(data)
        self.seq += 1
        self.closed = isinstance(events[-1], End)
        return data


class Status(enum.StrEnum):
    """Outcome of a verification, from best to worst."""

    OK = "ok"
    UNSIGNED = "unsigned"  # no end chunk: the session is open or its end was lost
    GAP = "gap"  # chunks are missing; what is there links up
    TAMPERED = "tampered"  # something stored is not what the gateway wrote


class Verdict(msgspec.Struct, frozen=True):
    """What :func:`verify_chain` found. ``seq`` names the first offending chunk."""

    status: Status
    detail: str
    seq: int | None = None
    gaps: tuple[tuple[int, int], ...] = ()  # inclusive ranges of missing seqs
    final_digest: bytes | None = None


class _Tampered(Exception):
    def __init__(self, seq: int, detail: str) -> None:
        super().__init__(detail)
        self.seq, self.detail = seq, detail


def verify_chain(stored: Iterable[tuple[int, bytes]], trusted_keys: Collection[bytes]) -> Verdict:
    """Check a session's chunks, given as ``(seq it was stored under, bytes)``.

    ``trusted_keys`` are the raw Ed25519 public keys of the gateways whose
    signatures count. Tampering outranks gaps, gaps outrank a missing end.
    """
    try:
        chunks = _decode_all(stored)
        _check_links(chunks)
        end_chunk = _check_end(chunks, trusted_keys)
    except _Tampered as exc:
        return Verdict(Status.TAMPERED, exc.detail, exc.seq)
    if not chunks:
        return Verdict(Status.GAP, "no chunks stored")
    gaps = _gaps(chunks.keys())
    digest = end_chunk.digest if end_chunk else None
    if gaps:
        return Verdict(Status.GAP, _describe_gaps(gaps), gaps[0][0], gaps, digest)
    if end_chunk is None:
        return Verdict(Status.UNSIGNED, "no end chunk: session open or its end was lost")
    return Verdict(Status.OK, f"{len(chunks)} chunks, signature valid", None, (), digest)


def _decode_all(stored: Iterable[tuple[int, bytes]]) -> dict[int, Chunk]:
    chunks: dict[int, Chunk] = {}
    for seq, raw in sorted(stored, key=lambda item: item[0]):
        try:
            chunk = decode_chunk(raw)
        except WireError as exc:
            raise _Tampered(seq, f"chunk {seq} does not decode: {exc.reason}") from None
        if chunk.seq != seq:
            raise _Tampered(seq, f"chunk stored as {seq} says it is {chunk.seq}")
        if chunks and chunk.session_id != next(iter(chunks.values())).session_id:
            raise _Tampered(seq, f"chunk {seq} belongs to another session")
        chunks[seq] = chunk
    return chunks


def _check_links(chunks: dict[int, Chunk]) -> None:
    for seq, chunk in chunks.items():
        before = chunks.get(seq - 1)
        if before is not None and chunk.prev != before.digest:
            raise _Tampered(seq, f"chunk {seq} does not follow chunk {seq - 1}")


def _check_end(chunks: dict[int, Chunk], trusted_keys: Collection[bytes]) -> Chunk | None:
    """The signed end chunk if there is one, after checking it is last and genuine."""
    end_chunk = next((chunk for chunk in chunks.values() if chunk.end is not None), None)
    if end_chunk is None:
        return None
    end, seq = end_chunk.end, end_chunk.seq
    assert end is not None
    assert end_chunk.signature is not None
    if seq != max(chunks):
        raise _Tampered(seq, f"chunks follow the end chunk {seq}")
    if end.key not in trusted_keys:
        raise _Tampered(seq, "signed by a key that is not trusted")
    if not end_signature_valid(end_chunk):
        raise _Tampered(seq, "the end chunk's signature does not verify")
    return end_chunk


def end_signature_valid(chunk: Chunk) -> bool:
    """Whether an end chunk's signature verifies under the key its end event names.

    Says nothing about whether that key is trusted or the chain links up:
    :func:`verify_chain` decides those.
    """
    end = chunk.end
    if end is None or chunk.signature is None:
        return False
    try:
        Ed25519PublicKey.from_public_bytes(end.key).verify(
            chunk.signature, signature_message(chunk.session_id, chunk.digest)
        )
    except InvalidSignature:
        return False
    return True


def _gaps(present: Iterable[int]) -> tuple[tuple[int, int], ...]:
    """Inclusive ranges of the seqs missing below the highest one present."""
    gaps: list[tuple[int, int]] = []
    expected = 0
    for seq in sorted(present):
        if seq > expected:
            gaps.append((expected, seq - 1))
        expected = seq + 1
    return tuple(gaps)


def _describe_gaps(gaps: Sequence[tuple[int, int]]) -> str:
    parts = [str(a) if a == b else f"{a}-{b}" for a, b in gaps]
    return "missing chunks " + ", ".join(parts)
