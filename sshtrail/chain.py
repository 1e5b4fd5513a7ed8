"""The hash chain of a session: building it as chunks are written, checking it later.

A writer numbers chunks 0, 1, 2 ... and links each to the digest of the one
before; the end chunk is signed. :func:`verify_chain` recomputes all of that
from the stored bytes and names the first thing that does not hold, so an
altered, removed or reordered chunk -- the last one included -- is reported.
"""

from __future__ import annotations

import bisect
import enum
import functools
import uuid
from collections import Counter
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass

import msgspec
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from sshtrail import interrupted
from sshtrail.errors import WireError
from sshtrail.events import End, Event
from sshtrail.seqranges import complement, describe_ranges
from sshtrail.wire import (
    GENESIS,
    Chunk,
    decode_chunk,
    encode_chunk_digest,
    encode_signed_chunk,
    signature_message,
)


class ChainWriter:
    """Encodes the chunks of one session in order, keeping ``seq`` and ``prev``."""

    def __init__(
        self,
        session_id: uuid.UUID,
        signer: Ed25519PrivateKey,
        *,
        legacy: bool = False,
        seq: int = 0,
        prev: bytes = GENESIS,
    ) -> None:
        """A new chain; or, with ``seq`` and ``prev`` (the digest of chunk ``seq - 1``),
        one taken up again after that chunk (a restarted gateway ending a session)."""
        self.session_id = session_id
        self._signer = signer
        #: Write as versions 1 to 3 did (only the end signed): old recordings, in tests.
        self._legacy = legacy
        self.seq = seq
        self.prev = prev
        self.closed = False

    @property
    def public_key(self) -> bytes:
        return self._signer.public_key().public_bytes_raw()

    def encode(self, events: Sequence[Event]) -> bytes:
        """Encode the next chunk; a chunk ending in ``end`` closes the chain."""
        if self.closed:
            raise ValueError(f"session {self.session_id} already ended")
        data, self.prev = encode_chunk_digest(
            self.session_id, self.seq, self.prev, events, self._signer, legacy=self._legacy
        )
        self.seq += 1
        self.closed = isinstance(events[-1], End)
        return data

    def encode_encoded(self, seq: int, events: bytes, *, end: bool) -> bytes:
        """Encode the next chunk from events already encoded (``wire.encode_events``)
        and checked (``wire.shape_problem``) by whoever numbered it ``seq``: a
        gateway's recorder process, handed them by the relay's."""
        if self.closed:
            raise ValueError(f"session {self.session_id} already ended")
        if seq != self.seq:
            raise ValueError(f"session {self.session_id}: chunk {seq} came where {self.seq} is due")
        data, self.prev = encode_signed_chunk(
            self.session_id, seq, self.prev, events, self._signer, end=end
        )
        self.seq += 1
        self.closed = end
        return data


class Status(enum.StrEnum):
    """Outcome of a verification, from best to worst."""

    OK = "ok"
    UNSIGNED = "unsigned"  # no end chunk: the session is open or its end was lost
    GAP = "gap"  # chunks are missing; what is there links up
    TAMPERED = "tampered"  # something stored is not what the gateway wrote


class Verdict(msgspec.Struct, frozen=True):
    """What :func:`verify_chain` found. ``seq`` names the first offending chunk;
    ``signer`` is the key the end chunk names (the signature may or may not hold)."""

    status: Status
    detail: str
    seq: int | None = None
    gaps: tuple[tuple[int, int], ...] = ()  # inclusive ranges of missing seqs
    final_digest: bytes | None = None
    signer: bytes | None = None
    #: Who ended the session for its gateway, which had stopped unexpectedly: the
    #: gateway itself, started again (``"gateway"``, signed), or the store (``"store"``,
    #: not signed); None for any other session (sshtrail/interrupted.py).
    interrupted: str | None = None


@dataclass(frozen=True, slots=True)
class Known:
    """What the store saw of a session as it wrote it: a chunk it stored that is gone,
    or an end it saw whose chunk is gone, is tampering, not a gap."""

    ended: bool
    last_seq: int | None
    #: Seqs the store never received (inclusive ranges), as it recorded them.
    gaps: Sequence[Sequence[int]] = ()

    def gone(self, present: Collection[int]) -> list[tuple[int, int]]:
        """Inclusive ranges of the seqs the store had that are not in ``present``:
        worked out on ranges, so a seq of 10**9 or a huge gap costs no more than
        the chunks stored."""
        if self.last_seq is None:
            return []
        seqs = sorted(present)
        gone: list[tuple[int, int]] = []
        for low, high in complement(self.gaps, self.last_seq):
            cursor = low
            for seq in seqs[bisect.bisect_left(seqs, low) : bisect.bisect_right(seqs, high)]:
                if seq > cursor:
                    gone.append((cursor, seq - 1))
                cursor = seq + 1
            if cursor <= high:
                gone.append((cursor, high))
        return gone


class _Tampered(Exception):
    def __init__(self, seq: int, detail: str) -> None:
        super().__init__(detail)
        self.seq, self.detail = seq, detail


def verify_chain(
    stored: Iterable[tuple[int, bytes]],
    trusted_keys: Collection[bytes],
    known: Known | None = None,
) -> Verdict:
    """Check a session's chunks, given as ``(seq it was stored under, bytes)``.

    ``trusted_keys`` are the raw Ed25519 public keys of the gateways whose
    signatures count; ``known``, what the store saw, makes chunks it had and
    no longer has tampering. Tampering outranks gaps, gaps outrank a missing
    end. The chunk blamed for tampering is the first one altered: walking
    back from an authentic end signature, the first chunk whose digest is
    not what its successor vouches for.
    """
    signer: bytes | None = None
    try:
        chunks = _decode_all(stored)
        end_chunk = _end_chunk(chunks)
        # Checked once: an Ed25519 check costs as much as a chunk's whole verification.
        authentic = end_chunk is not None and end_signature_valid(end_chunk)
        _check_session(chunks, end_chunk, authentic)
        signer = end_chunk.end.key if end_chunk is not None and end_chunk.end else None
        if known is not None:
            _check_known(chunks, known)
        _check_links(chunks, end_chunk, authentic)
        _check_end(chunks, end_chunk, trusted_keys, authentic)
    except _Tampered as exc:
        return Verdict(Status.TAMPERED, exc.detail, exc.seq, signer=signer)
    if not chunks:
        return Verdict(Status.GAP, "no chunks stored")
    gaps = missing_ranges(chunks.keys())
    digest = end_chunk.digest if end_chunk else None
    if gaps:
        return Verdict(Status.GAP, _describe_gaps(gaps), gaps[0][0], gaps, digest, signer)
    if end_chunk is None:
        return Verdict(Status.UNSIGNED, "no end chunk: session open or its end was lost")
    reason = end_chunk.end.reason if end_chunk.end is not None else None
    return ok_verdict(len(chunks), reason, digest, signer)


def ok_verdict(
    count: int, reason: str | None, digest: bytes | None, signer: bytes | None
) -> Verdict:
    """The verdict of a whole, linked session of ``count`` chunks with a valid signature,
    ended for ``reason``: ``interrupted`` (and said so) when its gateway ended it after
    stopping unexpectedly."""
    detail = f"{count} chunks, signature valid"
    if interrupted.by_gateway(reason):
        detail += f"; {reason}"
        return Verdict(Status.OK, detail, None, (), digest, signer, interrupted.BY_GATEWAY)
    return Verdict(Status.OK, detail, None, (), digest, signer)


def _decode_all(stored: Iterable[tuple[int, bytes]]) -> dict[int, Chunk]:
    chunks: dict[int, Chunk] = {}
    for seq, raw in sorted(stored, key=lambda item: item[0]):
        try:
            chunk = decode_chunk(raw)
        except WireError as exc:
            raise _Tampered(seq, f"chunk {seq} does not decode: {exc.reason}") from None
        if chunk.seq != seq:
            raise _Tampered(seq, f"chunk stored as {seq} says it is {chunk.seq}")
        if chunk.end is None and chunk.signer is not None and not chunk_signature_valid(chunk):
            raise _Tampered(seq, f"chunk {seq} was altered: its signature does not verify")
        chunks[seq] = chunk
    return chunks


def _check_session(chunks: dict[int, Chunk], end: Chunk | None, authentic: bool) -> None:
    """Every chunk names the session: the one an authentic end chunk names (its
    signature covers the id); else the one most chunks name, the earliest on a tie."""
    if not chunks:
        return
    ids = Counter(chunk.session_id for chunk in chunks.values())
    session_id = end.session_id if end is not None and authentic else ids.most_common(1)[0][0]
    stray = [seq for seq, chunk in chunks.items() if chunk.session_id != session_id]
    if stray:
        raise _Tampered(stray[0], f"chunk {stray[0]} belongs to another session")


def _end_chunk(chunks: dict[int, Chunk]) -> Chunk | None:
    return next((chunk for chunk in chunks.values() if chunk.end is not None), None)


def _check_known(chunks: dict[int, Chunk], known: Known) -> None:
    """Chunks the store had are all still there; an end it saw still is."""
    gone = known.gone(chunks.keys())
    if gone:
        ranges = describe_ranges(gone)
        if known.ended and known.last_seq is not None and gone[-1][1] == known.last_seq:
            raise _Tampered(
                gone[0][0],
                f"the session's tail was cut: chunks {ranges} were stored, the store saw "
                f"the session end at chunk {known.last_seq}, and they are gone",
            )
        raise _Tampered(gone[0][0], f"chunks {ranges} were stored and are gone")


def _check_links(chunks: dict[int, Chunk], end_chunk: Chunk | None, authentic_end: bool) -> None:
    """Every chunk follows the one before; the one blamed is the first altered."""
    if end_chunk is not None and authentic_end:
        # The end is authentic: walk back, each chunk vouching for the one before it.
        vouched = end_chunk.prev
        for seq in range(end_chunk.seq - 1, -1, -1):
            chunk = chunks.get(seq)
            if chunk is None:
                break  # a gap: nothing below it can be vouched for from here
            if chunk.digest != vouched:
                raise _Tampered(
                    seq, f"chunk {seq} was altered: it is not the chunk its successor follows"
                )
            vouched = chunk.prev
    for seq, chunk in chunks.items():
        before = chunks.get(seq - 1)
        if before is not None and chunk.prev != before.digest:
            if end_chunk is not None and seq == end_chunk.seq and not authentic_end:
                raise _Tampered(seq, "the end chunk was altered: its signature does not verify")
            # Without an authentic successor to say which, the earlier one is blamed.
            raise _Tampered(
                seq - 1, f"chunk {seq} does not follow chunk {seq - 1}: one of them was altered"
            )


def _check_end(
    chunks: dict[int, Chunk],
    end_chunk: Chunk | None,
    trusted_keys: Collection[bytes],
    authentic: bool,
) -> None:
    """The signed end chunk, if there is one, is last and genuine."""
    if end_chunk is None:
        return
    end, seq = end_chunk.end, end_chunk.seq
    assert end is not None
    assert end_chunk.signature is not None
    if seq != max(chunks):
        raise _Tampered(seq, f"chunks follow the end chunk {seq}")
    if not authentic:
        raise _Tampered(seq, "the end chunk's signature does not verify")
    if end.key not in trusted_keys:
        raise _Tampered(seq, "signed by a key that is not trusted")


@functools.lru_cache(maxsize=256)
def public_key(raw: bytes) -> Ed25519PublicKey:
    """The key object of a raw Ed25519 public key, made once per key: making it costs
    as much as half a check, and a group sees the same few gateway keys all day."""
    return Ed25519PublicKey.from_public_bytes(raw)


def chunk_signature_valid(chunk: Chunk) -> bool:
    """Whether a chunk's signature verifies under the key it names (``chunk.signer``):
    an end chunk's as :func:`end_signature_valid`; False for a chunk without one."""
    if chunk.end is not None:
        return end_signature_valid(chunk)
    if chunk.signer is None or chunk.signature is None:
        return False
    message = signature_message(chunk.session_id, chunk.digest, end=False)
    try:
        public_key(chunk.signer).verify(chunk.signature, message)
    except InvalidSignature:
        return False
    return True


def end_signature_valid(chunk: Chunk) -> bool:
    """Whether an end chunk's signature verifies under the key its end event names.

    Says nothing about whether that key is trusted or the chain links up:
    :func:`verify_chain` decides those.
    """
    end = chunk.end
    if end is None or chunk.signature is None:
        return False
    try:
        public_key(end.key).verify(
            chunk.signature, signature_message(chunk.session_id, chunk.digest)
        )
    except InvalidSignature:
        return False
    return True


def missing_ranges(present: Iterable[int]) -> tuple[tuple[int, int], ...]:
    """Inclusive ranges of the seqs missing below the highest one present."""
    gaps: list[tuple[int, int]] = []
    expected = 0
    for seq in sorted(present):
        if seq > expected:
            gaps.append((expected, seq - 1))
        expected = seq + 1
    return tuple(gaps)


def _describe_gaps(gaps: Sequence[tuple[int, int]]) -> str:
    return "missing chunks " + describe_ranges(gaps)
