"""The wire format: one Kafka message is one chunk of one session's events.

Layout (``docs/wire-format.md`` is the normative description)::

    magic b"ST" | version u8 | flags u8 | body (MessagePack) | [key, 32] | [signature, 64]

The body is ``[session_id: bin16, seq: uint, prev: bin32, events: [event...]]``.
``prev`` is the SHA-256 of the previous chunk's *signed part* (everything before
the signature; for chunks without one, the whole message), which makes the
chunks of a session a hash chain. From version 4 every chunk carries the
gateway's public key and an Ed25519 signature over its digest, so a reader
tells a gateway's chunk from a forgery as it arrives; in versions 1 to 3 only
the chunk whose last event is ``end`` is signed (its key is ``end.key``). The
end chunk's signature vouches for every chunk before it.

Decoding is strict: any deviation raises :class:`~sshtrail.errors.WireError`,
never another exception.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Sequence
from typing import Annotated, Final

import msgspec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from sshtrail.errors import WireError
from sshtrail.events import U64, End, Env, Event, Exec, Notice, SealedInput, Start
from sshtrail.ids import is_uuid7

MAGIC: Final = b"ST"
#: The newest version this code writes and reads; it reads every older one.
#: Version 2 adds the ``exec`` mode ``direct-tcpip`` (a forwarded connection);
#: version 3 the events ``env``, ``n`` (notice) and ``ms`` (sealed input).
#: A chunk is written with the oldest version that can hold it, so consumers
#: that know only an older version still read every recording that needs no more.
#: Version 4 signs every chunk (key and signature after the body); it is what
#: a gateway writes. Versions 1 to 3 are read as before: recordings made before.
VERSION: Final = 4
KNOWN_VERSIONS: Final = frozenset({1, 2, 3, 4})
#: The first version whose every chunk is signed and names its key.
SIGNED_CHUNKS: Final = 4
FLAG_SIGNED: Final = 0x01
HEADER_SIZE: Final = 4
SIGNATURE_SIZE: Final = 64
KEY_SIZE: Final = 32
DIGEST_SIZE: Final = 32
GENESIS: Final = bytes(DIGEST_SIZE)  # ``prev`` of chunk 0
#: Kafka's default ``message.max.bytes``; the recorder stays far below it.
MAX_CHUNK_SIZE: Final = 1_048_576
#: Domain separation: a signature over a chunk can mean nothing else.
SIGNATURE_CONTEXT: Final = b"sshtrail session end v1\x00"
#: The same for the other chunks of version 4: an end signature and a chunk
#: signature can never be taken for one another.
CHUNK_SIGNATURE_CONTEXT: Final = b"sshtrail chunk v1\x00"

SessionIdBytes = Annotated[bytes, msgspec.Meta(min_length=16, max_length=16)]
DigestBytes = Annotated[bytes, msgspec.Meta(min_length=DIGEST_SIZE, max_length=DIGEST_SIZE)]


class _Body(msgspec.Struct, array_like=True, forbid_unknown_fields=True):
    session_id: SessionIdBytes
    seq: U64
    prev: DigestBytes
    events: Annotated[list[Event], msgspec.Meta(min_length=1)]


class _EncodedBody(msgspec.Struct, array_like=True):
    """:class:`_Body` with its events already encoded by :func:`encode_events`: the
    same bytes, without encoding the events again (a gateway's recorder process)."""

    session_id: bytes
    seq: int
    prev: bytes
    events: msgspec.Raw


class Chunk(msgspec.Struct, frozen=True):
    """A decoded chunk.

    ``digest`` is the SHA-256 of the signed part: the next chunk's ``prev``,
    and for an end chunk the session's final digest. ``raw`` is the message
    exactly as received, which is what the store keeps. ``signer`` is the key
    ``signature`` is by: the key a version-4 chunk names, ``end.key`` for an
    older end chunk, None for an older chunk without a signature.
    """

    session_id: uuid.UUID
    seq: int
    prev: bytes
    events: tuple[Event, ...]
    digest: bytes
    signature: bytes | None
    raw: bytes
    signer: bytes | None = None

    @property
    def version(self) -> int:
        return self.raw[2]

    @property
    def end(self) -> End | None:
        """The ``end`` event when this chunk closes the session."""
        last = self.events[-1]
        return last if isinstance(last, End) else None


_encoder: Final = msgspec.msgpack.Encoder()
_decoder: Final = msgspec.msgpack.Decoder(_Body)


def signature_message(session_id: uuid.UUID, digest: bytes, *, end: bool = True) -> bytes:
    """The bytes the gateway signs for a session's end chunk (``end``) or another chunk."""
    return (SIGNATURE_CONTEXT if end else CHUNK_SIGNATURE_CONTEXT) + session_id.bytes + digest


def encode_chunk(
    session_id: uuid.UUID,
    seq: int,
    prev: bytes,
    events: Sequence[Event],
    signer: Ed25519PrivateKey | None = None,
    *,
    legacy: bool = False,
) -> bytes:
    """Encode one chunk: signed by ``signer`` in version 4, as gateways write.

    Without ``signer``, or with ``legacy``, the chunk is written as versions 1
    to 3 were (only an end chunk signed): recordings made before version 4,
    which readers still take. An end chunk always needs ``signer``. Raises
    :class:`ValueError` for arguments the decoder would reject, so a bug in
    the recorder is caught where it happens rather than downstream.
    """
    return encode_chunk_digest(session_id, seq, prev, events, signer, legacy=legacy)[0]


def encode_chunk_digest(
    session_id: uuid.UUID,
    seq: int,
    prev: bytes,
    events: Sequence[Event],
    signer: Ed25519PrivateKey | None = None,
    *,
    legacy: bool = False,
) -> tuple[bytes, bytes]:
    """:func:`encode_chunk`, and the chunk's digest (:func:`chain_digest`), which
    signing computes anyway: a chain writer need not hash the chunk twice."""
    events = list(events)
    problem = shape_problem(session_id, seq, events) or _prev_problem(seq, prev)
    if problem:
        raise ValueError(problem)
    end = events[-1] if isinstance(events[-1], End) else None
    if end is not None:
        if signer is None:
            raise ValueError("an end chunk must be signed")
        if signer.public_key().public_bytes_raw() != end.key:
            raise ValueError("end.key is not the public key of the signer")
    if signer is not None and not legacy:
        encoded = encode_events(events)
        return encode_signed_chunk(session_id, seq, prev, encoded, signer, end=end is not None)
    version, flags = _version_for(events), FLAG_SIGNED if end is not None else 0
    header = MAGIC + bytes((version, flags))
    signed = header + _encoder.encode(_Body(session_id.bytes, seq, prev, events))
    if len(signed) + (SIGNATURE_SIZE if flags else 0) > MAX_CHUNK_SIZE:
        raise ValueError(f"chunk of {len(signed)} bytes exceeds {MAX_CHUNK_SIZE}")
    digest = hashlib.sha256(signed).digest()
    if not flags:
        return signed, digest
    assert signer is not None
    return signed + signer.sign(signature_message(session_id, digest, end=end is not None)), digest


def encode_events(events: Sequence[Event]) -> bytes:
    """A chunk's events as its body holds them (MessagePack), for
    :func:`encode_signed_chunk`."""
    return _encoder.encode(list(events))


def encode_signed_chunk(
    session_id: uuid.UUID,
    seq: int,
    prev: bytes,
    events: bytes,
    signer: Ed25519PrivateKey,
    *,
    end: bool,
) -> tuple[bytes, bytes]:
    """A version-4 chunk of events already encoded by :func:`encode_events` (and
    checked by :func:`shape_problem`; ``end``: the last of them is the end event),
    and its digest: the next chunk's ``prev``. The same bytes :func:`encode_chunk`
    makes of the events themselves."""
    problem = _prev_problem(seq, prev)
    if problem:
        raise ValueError(problem)
    header = MAGIC + bytes((SIGNED_CHUNKS, FLAG_SIGNED))
    body = _encoder.encode(_EncodedBody(session_id.bytes, seq, prev, msgspec.Raw(events)))
    signed = b"".join((header, body, signer.public_key().public_bytes_raw()))
    if len(signed) + SIGNATURE_SIZE > MAX_CHUNK_SIZE:
        raise ValueError(f"chunk of {len(signed)} bytes exceeds {MAX_CHUNK_SIZE}")
    digest = hashlib.sha256(signed).digest()
    return signed + signer.sign(signature_message(session_id, digest, end=end)), digest


def _version_for(events: Sequence[Event]) -> int:
    """The oldest version that holds ``events``."""
    if any(isinstance(e, Env | Notice | SealedInput) for e in events):
        return 3
    return 2 if any(isinstance(e, Exec) and e.mode == "direct-tcpip" for e in events) else 1


def chain_digest(message: bytes) -> bytes:
    """SHA-256 of a well-formed message's signed part: what the next chunk's ``prev`` holds."""
    signed = len(message) >= HEADER_SIZE and message[3] & FLAG_SIGNED
    return hashlib.sha256(message[:-SIGNATURE_SIZE] if signed else message).digest()


def unchecked_body(message: bytes) -> tuple[uuid.UUID, int, list[Event]]:
    """Session id, seq and events of a chunk its own writer made (a gateway reading its
    spool back), without :func:`decode_chunk`'s rules and hashing: a fraction of their
    cost. :class:`WireError` if it does not decode."""
    signed = len(message) > HEADER_SIZE and message[3] & FLAG_SIGNED
    keyed = len(message) > HEADER_SIZE and message[2] >= SIGNED_CHUNKS
    end = len(message) - (SIGNATURE_SIZE if signed else 0) - (KEY_SIZE if keyed else 0)
    try:
        body = _decoder.decode(memoryview(message)[HEADER_SIZE:end])
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:
        raise WireError(f"malformed body: {exc}") from None
    return uuid.UUID(bytes=body.session_id), body.seq, body.events


def decode_chunk(message: bytes) -> Chunk:
    """Decode and validate one Kafka message value.

    Checks structure and internal consistency only; whether the chain links
    up and the signature is trusted is :mod:`sshtrail.chain`'s job.
    """
    if not isinstance(message, bytes | bytearray | memoryview):
        raise WireError(f"message value must be bytes, not {type(message).__name__}")
    message = bytes(message)
    version, flags = _header(message)
    keyed = version >= SIGNED_CHUNKS
    signed_len = len(message) - (SIGNATURE_SIZE if flags & FLAG_SIGNED else 0)
    body_end = signed_len - (KEY_SIZE if keyed else 0)
    if body_end <= HEADER_SIZE:
        raise WireError("message too short for its body and signature")
    try:
        body = _decoder.decode(message[HEADER_SIZE:body_end])
    except msgspec.DecodeError as exc:  # ValidationError is a subclass
        raise WireError(f"malformed body: {exc}") from None
    except UnicodeDecodeError as exc:  # msgspec lets this one through for text fields
        raise WireError(f"malformed body: text is not UTF-8 ({exc.reason})") from None
    session_id = uuid.UUID(bytes=body.session_id)
    sid = str(session_id)
    problem = shape_problem(session_id, body.seq, body.events) or _prev_problem(body.seq, body.prev)
    if problem:
        raise WireError(problem, session_id=sid, seq=body.seq)
    needed = _version_for(body.events)
    if version < needed:
        raise WireError(
            f"this chunk's events need wire format version {needed}, not {version}",
            session_id=sid,
            seq=body.seq,
        )
    last = body.events[-1]
    end = last if isinstance(last, End) else None
    signer = _signer(message[body_end:signed_len] if keyed else None, flags, end)
    if isinstance(signer, str):
        raise WireError(signer, session_id=sid, seq=body.seq)
    signed = message[:signed_len]
    return Chunk(
        session_id=session_id,
        seq=body.seq,
        prev=body.prev,
        events=tuple(body.events),
        digest=hashlib.sha256(signed).digest(),
        signature=message[signed_len:] if signer is not None else None,
        raw=message,
        signer=signer,
    )


def _header(message: bytes) -> tuple[int, int]:
    """The version and flags of a message whose size and header are valid."""
    if len(message) > MAX_CHUNK_SIZE:
        raise WireError(f"message of {len(message)} bytes exceeds {MAX_CHUNK_SIZE}")
    if len(message) < HEADER_SIZE:
        raise WireError(f"message of {len(message)} bytes is shorter than the header")
    if message[:2] != MAGIC:
        raise WireError(f"bad magic {message[:2]!r}, not an sshtrail chunk")
    version, flags = message[2], message[3]
    if version not in KNOWN_VERSIONS:
        known = ", ".join(map(str, sorted(KNOWN_VERSIONS)))
        raise WireError(f"unsupported wire format version {version} (this reader knows {known})")
    if flags & ~FLAG_SIGNED:
        raise WireError(f"unknown flags 0x{flags:02x}")
    if version >= SIGNED_CHUNKS and not flags & FLAG_SIGNED:
        raise WireError(f"a version {version} chunk must be signed")
    return version, flags


def _signer(named: bytes | None, flags: int, end: End | None) -> bytes | str | None:
    """The key a chunk's signature is by (``named`` after the body from version 4, else
    ``end.key``; None: unsigned), or what is wrong."""
    if named is not None:
        return "the chunk's key is not end.key" if end is not None and end.key != named else named
    if (end is not None) != bool(flags & FLAG_SIGNED):
        return "signature flag does not match the end event"
    return end.key if end is not None else None


def _prev_problem(seq: int, prev: bytes) -> str | None:
    """What is wrong with ``prev`` for chunk ``seq``, if anything."""
    if len(prev) != DIGEST_SIZE:
        return f"prev digest must be {DIGEST_SIZE} bytes"
    if (seq == 0) != (prev == GENESIS):
        return "prev digest must be all zero exactly for seq 0"
    return None


def shape_problem(session_id: uuid.UUID, seq: int, events: Sequence[Event]) -> str | None:
    """Rules chunk ``seq``'s id and events must follow beyond their types (see
    docs/wire-format.md); the ``prev`` digest is the chain's to keep."""
    if not is_uuid7(session_id):
        return f"session id {session_id} is not a UUIDv7"
    if not 0 <= seq < 2**63:
        return f"seq {seq} out of range"
    if not events:
        return "a chunk holds at least one event"
    if (seq == 0) != isinstance(events[0], Start):
        return "the start event opens chunk 0 and appears nowhere else"
    last_t = -1
    for index, event in enumerate(events):
        if event.t < last_t:
            return f"event {index} goes back in time ({event.t} < {last_t} ns)"
        last_t = event.t
        if index and isinstance(event, Start):
            return "the start event opens chunk 0 and appears nowhere else"
        if isinstance(event, End):
            if index != len(events) - 1:
                return "the end event must be the last event of its chunk"
            if event.chunks != seq + 1:
                return f"end.chunks is {event.chunks} but this is chunk {seq + 1}"
    return None
