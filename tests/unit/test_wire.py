"""The wire format: round trips, strict decoding, and a chain that shows tampering."""

from __future__ import annotations

import contextlib
import hashlib
import uuid

import msgspec
import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sshtrail import events as ev
from sshtrail import provenance
from sshtrail.chain import (
    ChainWriter,
    Known,
    Status,
    chunk_signature_valid,
    end_signature_valid,
    verify_chain,
)
from sshtrail.errors import WireError
from sshtrail.ids import uuid7
from sshtrail.provenance import Provenance
from sshtrail.wire import (
    GENESIS,
    MAX_CHUNK_SIZE,
    SIGNATURE_SIZE,
    Chunk,
    chain_digest,
    decode_chunk,
    encode_chunk,
    signature_message,
)
from tests.support import recordings
from tests.unit.strategies import sessions

KEY = Ed25519PrivateKey.generate()
PUBLIC = KEY.public_key().public_bytes_raw()
TRUSTED = frozenset({PUBLIC})
FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def record(session: tuple[uuid.UUID, list[list[ev.Event]]]) -> list[bytes]:
    """Encode a generated session as the gateway would: chained, end signed."""
    session_id, chunks = session
    writer = ChainWriter(session_id, KEY)
    last_t = chunks[-1][-1].t if chunks[-1] else chunks[0][-1].t if chunks[0] else 0
    end = ev.End(
        t=max(last_t, 0), reason="closed", bytes_in=1, bytes_out=2, chunks=len(chunks), key=PUBLIC
    )
    return [
        writer.encode([*events, end] if index == len(chunks) - 1 else events)
        for index, events in enumerate(chunks)
    ]


def start_event() -> ev.Start:
    return recordings.start_event(
        target="web01",
        host="10.0.0.1",
        gateway="gw1",
        term="xterm-256color",
        started_at=1_700_000_000_000_000_000,
    )


def as_stored(messages: list[bytes]) -> list[tuple[int, bytes]]:
    return list(enumerate(messages))


@FAST
@given(sessions())
def test_round_trip_keeps_every_event_and_links_the_chain(
    session: tuple[uuid.UUID, list[list[ev.Event]]],
) -> None:
    session_id, chunks = session
    messages = record(session)
    prev = GENESIS
    for seq, (message, events) in enumerate(zip(messages, chunks, strict=True)):
        chunk = decode_chunk(message)
        assert chunk.session_id == session_id
        assert chunk.seq == seq
        assert chunk.prev == prev
        assert list(chunk.events[: len(events)]) == events
        assert chunk.raw == message
        prev = chunk.digest
        assert chain_digest(message) == chunk.digest
    assert decode_chunk(messages[-1]).end is not None
    verdict = verify_chain(as_stored(messages), TRUSTED)
    assert verdict.status is Status.OK, verdict.detail


@FAST
@given(sessions(), st.data())
def test_any_altered_byte_is_rejected_or_detected(
    session: tuple[uuid.UUID, list[list[ev.Event]]], data: st.DataObject
) -> None:
    messages = record(session)
    which = data.draw(st.integers(0, len(messages) - 1))
    original = messages[which]
    position = data.draw(st.integers(0, len(original) - 1))
    value = data.draw(st.integers(0, 255).filter(lambda b: b != original[position]))
    altered = original[:position] + bytes([value]) + original[position + 1 :]
    with contextlib.suppress(WireError):  # rejected outright: a typed error, nothing else
        decode_chunk(altered)
    tampered = [*messages[:which], altered, *messages[which + 1 :]]
    verdict = verify_chain(as_stored(tampered), TRUSTED)
    assert verdict.status is Status.TAMPERED
    # The chunk blamed is the one altered, wherever the byte was: the end's signature
    # vouches for every chunk before it, back to the first one that differs.
    assert verdict.seq == which, verdict.detail


def test_what_the_store_saw_turns_missing_chunks_into_tampering() -> None:
    messages = record((uuid7(), [[start_event()], [ev.Output(1, b"a")], [ev.Output(2, b"b")]]))
    stored = as_stored(messages)
    ended = Known(ended=True, last_seq=len(messages) - 1)
    assert verify_chain(stored, TRUSTED, ended).status is Status.OK
    cut = verify_chain(stored[:-2], TRUSTED, ended)
    assert (cut.status, cut.seq) == (Status.TAMPERED, len(messages) - 2)
    assert "tail was cut" in cut.detail
    assert f"end at chunk {len(messages) - 1}" in cut.detail
    # Without that knowledge it is only an open session.
    assert verify_chain(stored[:-2], TRUSTED).status is Status.UNSIGNED
    hole = verify_chain([stored[0], *stored[2:]], TRUSTED, ended)
    assert (hole.status, hole.seq, hole.detail) == (
        Status.TAMPERED,
        1,
        "chunks 1 were stored and are gone",
    )
    # A gap the store itself recorded (never received) stays a gap.
    never = Known(ended=True, last_seq=len(messages) - 1, gaps=[[1, 1]])
    assert verify_chain([stored[0], *stored[2:]], TRUSTED, never).status is Status.GAP


@FAST
@given(sessions(), st.data())
def test_every_truncation_raises_the_typed_error(
    session: tuple[uuid.UUID, list[list[ev.Event]]], data: st.DataObject
) -> None:
    messages = record(session)
    message = data.draw(st.sampled_from(messages))
    cut = data.draw(st.integers(0, len(message) - 1))
    with pytest.raises(WireError):
        decode_chunk(message[:cut])


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=512))
def test_random_bytes_never_raise_anything_but_the_typed_error(garbage: bytes) -> None:
    with contextlib.suppress(WireError):
        decode_chunk(garbage)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=256))
def test_garbage_after_a_valid_header_is_rejected_or_decoded(garbage: bytes) -> None:
    with contextlib.suppress(WireError):
        decode_chunk(b"ST\x01\x00" + garbage)


@FAST
@given(sessions(max_chunks=6), st.data())
def test_removing_or_reordering_chunks_is_detected(
    session: tuple[uuid.UUID, list[list[ev.Event]]], data: st.DataObject
) -> None:
    messages = record(session)
    if len(messages) < 2:
        return
    stored = as_stored(messages)
    removed = data.draw(st.integers(0, len(stored) - 1))
    without = stored[:removed] + stored[removed + 1 :]
    expected = Status.UNSIGNED if removed == len(stored) - 1 else Status.GAP
    if removed == 0 and len(stored) == 2:
        expected = Status.GAP
    assert verify_chain(without, TRUSTED).status is expected
    i = data.draw(st.integers(0, len(stored) - 2))
    swapped = list(stored)
    swapped[i], swapped[i + 1] = (i, stored[i + 1][1]), (i + 1, stored[i][1])
    assert verify_chain(swapped, TRUSTED).status is Status.TAMPERED


def test_an_untrusted_signer_is_reported_as_tampering() -> None:
    other = Ed25519PrivateKey.generate()
    writer = ChainWriter(uuid7(), other)
    messages = [
        writer.encode([start_event()]),
        writer.encode([ev.End(1, "closed", 0, 0, 2, writer.public_key)]),
    ]
    verdict = verify_chain(as_stored(messages), TRUSTED)
    assert verdict.status is Status.TAMPERED
    assert "not trusted" in verdict.detail


def test_a_resigned_forgery_is_caught_by_the_chain() -> None:
    """Rewriting a middle chunk breaks the link to the next one, signature or not."""
    session_id = uuid7()
    writer = ChainWriter(session_id, KEY)
    first = writer.encode([start_event()])
    middle = writer.encode([ev.Output(5, b"rm -rf /\r\n")])
    last = writer.encode([ev.End(9, "closed", 0, 10, 3, PUBLIC)])
    forged = encode_chunk(session_id, 1, chain_digest(first), [ev.Output(5, b"ls\r\n")])
    verdict = verify_chain([(0, first), (1, forged), (2, last)], TRUSTED)
    assert (verdict.status, verdict.seq) == (Status.TAMPERED, 1)  # the forgery, not its successor
    assert verify_chain([(0, first), (1, middle), (2, last)], TRUSTED).status is Status.OK


def test_output_is_binary_safe() -> None:
    every_byte = bytes(range(256)) * 4
    session_id = uuid7()
    message = encode_chunk(session_id, 0, GENESIS, [start_event(), ev.Output(1, every_byte)])
    decoded = decode_chunk(message).events[1]
    assert isinstance(decoded, ev.Output)
    assert decoded.data == every_byte


def _body(*fields: object) -> bytes:
    return msgspec.msgpack.encode(list(fields))


START_ARRAY = ["start", 0, "a", "c", "t", "h", 22, "u", "g", "xterm", 80, 24, 0]


#: Messages the decoder must refuse, and what its error says.
INVALID = [
    (b"", "shorter than the header"),
    (b"XX\x01\x00" + _body(uuid7().bytes, 0, GENESIS, [START_ARRAY]), "bad magic"),
    (b"ST\x09\x00" + _body(uuid7().bytes, 0, GENESIS, [START_ARRAY]), "version 9"),
    (b"ST\x01\x80" + _body(uuid7().bytes, 0, GENESIS, [START_ARRAY]), "unknown flags"),
    (b"ST\x01\x00" + _body(uuid.uuid4().bytes, 0, GENESIS, [START_ARRAY]), "not a UUIDv7"),
    (b"ST\x01\x00" + _body(uuid7().bytes, 0, GENESIS, []), "length >= 1"),
    (b"ST\x01\x00" + _body(uuid7().bytes, 0, b"\x01" * 32, [START_ARRAY]), "all zero"),
    (b"ST\x01\x00" + _body(uuid7().bytes, 1, GENESIS, [["o", 0, b"x", False]]), "all zero"),
    (b"ST\x01\x00" + _body(uuid7().bytes, 1, b"\x01" * 32, [START_ARRAY]), "start event"),
    (b"ST\x01\x00" + _body(uuid7().bytes, -1, GENESIS, [START_ARRAY]), ">= 0"),
    (b"ST\x01\x00" + _body(uuid7().bytes, 0, GENESIS, [START_ARRAY]) + b"\x00", "trailing"),
    (
        b"ST\x01\x00" + _body(uuid7().bytes, 0, GENESIS, [START_ARRAY, ["o", 0, "x"]]),
        "Expected `bytes`",
    ),
    (
        b"ST\x01\x00" + _body(uuid7().bytes, 0, GENESIS, [START_ARRAY, ["zz", 0]]),
        "Invalid value 'zz'",
    ),
    (
        b"ST\x01\x00" + _body(uuid7().bytes, 0, GENESIS, [START_ARRAY, ["o", 5, b"", False, 1]]),
        "at most length",
    ),
    (
        b"ST\x01\x00"
        + _body(uuid7().bytes, 0, GENESIS, [START_ARRAY, ["o", 9, b"", False], ["i", 3, b""]]),
        "back in time",
    ),
    (
        b"ST\x01\x00"
        + _body(uuid7().bytes, 0, GENESIS, [START_ARRAY, ["end", 1, "x", 0, 0, 1, PUBLIC]]),
        "signature flag",
    ),
    (
        b"ST\x01\x01"
        + _body(
            uuid7().bytes,
            0,
            GENESIS,
            [START_ARRAY, ["end", 1, "x", 0, 0, 1, PUBLIC], ["i", 2, b""]],
        )
        + bytes(SIGNATURE_SIZE),
        "end event must be the last",
    ),
    (
        b"ST\x01\x01"
        + _body(uuid7().bytes, 0, GENESIS, [START_ARRAY, ["end", 1, "x", 0, 0, 7, PUBLIC]])
        + bytes(SIGNATURE_SIZE),
        "end.chunks is 7",
    ),
    (b"ST\x01\x00" + bytes(MAX_CHUNK_SIZE), "exceeds"),
]


@pytest.mark.parametrize(("message", "reason"), INVALID, ids=[reason for _, reason in INVALID])
def test_invalid_messages_name_what_is_wrong(message: bytes, reason: str) -> None:
    with pytest.raises(WireError, match=reason):
        decode_chunk(message)


def test_errors_carry_session_and_seq_once_the_header_is_known() -> None:
    session_id = uuid7()
    message = b"ST\x01\x00" + _body(session_id.bytes, 3, b"\x01" * 32, [START_ARRAY])
    with pytest.raises(WireError) as info:
        decode_chunk(message)
    assert info.value.session_id == str(session_id)
    assert info.value.seq == 3
    assert str(session_id) in str(info.value)


def test_encoder_refuses_what_the_decoder_would_reject() -> None:
    session_id = uuid7()
    with pytest.raises(ValueError, match="UUIDv7"):
        encode_chunk(uuid.uuid4(), 0, GENESIS, [start_event()])
    with pytest.raises(ValueError, match="must be signed"):
        encode_chunk(session_id, 0, GENESIS, [start_event(), ev.End(1, "x", 0, 0, 1, PUBLIC)])
    other = Ed25519PrivateKey.generate()
    with pytest.raises(ValueError, match="not the public key"):
        encode_chunk(
            session_id, 0, GENESIS, [start_event(), ev.End(1, "x", 0, 0, 1, PUBLIC)], other
        )
    with pytest.raises(ValueError, match="exceeds"):
        encode_chunk(session_id, 0, GENESIS, [start_event(), ev.Output(1, bytes(MAX_CHUNK_SIZE))])
    writer = ChainWriter(session_id, KEY)
    writer.encode([start_event(), ev.End(1, "x", 0, 0, 1, PUBLIC)])
    with pytest.raises(ValueError, match="already ended"):
        writer.encode([ev.Output(2, b"late")])


def test_text_that_is_not_utf8_is_a_typed_error() -> None:
    good = b"ST\x01\x00" + _body(uuid7().bytes, 0, GENESIS, [START_ARRAY])
    operator = msgspec.msgpack.encode("a")  # b"\xa1a": a one-byte str
    bad = good.replace(operator, b"\xa1\x80", 1)
    with pytest.raises(WireError, match="not UTF-8"):
        decode_chunk(bad)


def test_a_chunk_is_written_in_the_oldest_version_that_holds_it() -> None:
    plain = encode_chunk(uuid7(), 0, GENESIS, [start_event(), ev.Exec(1, "exec", b"uptime")])
    where = b"10.0.3.7:5432"
    forward = ev.Exec(1, "direct-tcpip", where)
    forwarded = encode_chunk(uuid7(), 0, GENESIS, [start_event(), forward])
    assert (plain[2], forwarded[2]) == (1, 2)  # readers of version 1 still read the first
    [_, exec_event] = decode_chunk(forwarded).events
    assert exec_event == forward


def test_version_1_cannot_carry_a_forwarded_connection() -> None:
    forwarded = encode_chunk(
        uuid7(), 0, GENESIS, [start_event(), ev.Exec(1, "direct-tcpip", b"[::1]:22")]
    )
    with pytest.raises(WireError, match="events need wire format version 2, not 1"):
        decode_chunk(forwarded[:2] + b"\x01" + forwarded[3:])
    with pytest.raises(
        WireError, match=r"unsupported wire format version 5 \(this reader knows 1, 2, 3, 4\)"
    ):
        decode_chunk(forwarded[:2] + b"\x05" + forwarded[3:])


@pytest.mark.parametrize(
    "event",
    [
        ev.Env(2, b"LC_PAYLOAD", b"rm -rf /", False),
        ev.Env(2, b"API_TOKEN", None, True),
        ev.Notice(2, "pty", "terminal size 4294967295x24 requested, 1024x24 granted"),
        ev.SealedInput(2, 8, b"\x01" * 80),
    ],
)
def test_version_3_events_need_version_3(event: ev.Event) -> None:
    chunk = encode_chunk(uuid7(), 0, GENESIS, [start_event(), event])
    assert chunk[2] == 3
    assert decode_chunk(chunk).events[1] == event
    for older in (1, 2):
        with pytest.raises(WireError, match=f"need wire format version 3, not {older}"):
            decode_chunk(chunk[:2] + bytes([older]) + chunk[3:])


def test_every_chunk_of_version_4_is_signed_and_names_its_key() -> None:
    session_id = uuid7()
    writer = ChainWriter(session_id, KEY)
    first = decode_chunk(writer.encode([start_event()]))
    middle = decode_chunk(writer.encode([ev.Output(1, b"ls\r\n")]))
    end = decode_chunk(writer.encode([ev.End(2, "closed", 0, 4, 3, PUBLIC)]))
    for chunk in (first, middle, end):
        assert (chunk.version, chunk.signer) == (4, PUBLIC)
        assert chunk_signature_valid(chunk)
    assert end_signature_valid(end)
    # The key is part of what the chain links: the digest covers everything but the signature.
    assert middle.prev == first.digest == chain_digest(first.raw)
    assert first.digest == hashlib.sha256(first.raw[:-SIGNATURE_SIZE]).digest()
    assert first.raw[-SIGNATURE_SIZE - 32 : -SIGNATURE_SIZE] == PUBLIC
    verdict = verify_chain([(c.seq, c.raw) for c in (first, middle, end)], TRUSTED)
    assert verdict.status is Status.OK


def test_a_chunk_signature_is_refused_for_any_other_chunk_session_or_key() -> None:
    session_id = uuid7()
    chunk = decode_chunk(ChainWriter(session_id, KEY).encode([start_event()]))
    signature = chunk.raw[-SIGNATURE_SIZE:]
    flipped = bytearray(chunk.raw)
    flipped[-1] ^= 1
    assert not chunk_signature_valid(decode_chunk(bytes(flipped)))
    # Another key put in its place: the digest changes, the signature no longer holds.
    other = Ed25519PrivateKey.generate().public_key().public_bytes_raw()
    rekeyed = chunk.raw[: -SIGNATURE_SIZE - 32] + other + signature
    assert not chunk_signature_valid(decode_chunk(rekeyed))
    # The same signature on the same body under another session id does not hold.
    moved = chunk.raw.replace(session_id.bytes, uuid7().bytes)
    assert not chunk_signature_valid(decode_chunk(moved))
    # A chunk signature is not an end signature: the contexts differ.
    assert (
        KEY.public_key().verify(signature, signature_message(session_id, chunk.digest, end=False))
        is None
    )
    with pytest.raises(InvalidSignature):
        KEY.public_key().verify(signature, signature_message(session_id, chunk.digest))


def test_a_version_4_chunk_without_its_signature_or_with_another_end_key_is_malformed() -> None:
    session_id = uuid7()
    signed = ChainWriter(session_id, KEY).encode([start_event()])
    with pytest.raises(WireError, match="a version 4 chunk must be signed"):
        decode_chunk(signed[:3] + b"\x00" + signed[4:-SIGNATURE_SIZE])
    other = Ed25519PrivateKey.generate()
    end = ev.End(1, "closed", 0, 0, 1, other.public_key().public_bytes_raw())
    forged = encode_chunk(session_id, 0, GENESIS, [start_event(), end], other)
    swapped = forged[: -SIGNATURE_SIZE - 32] + PUBLIC + forged[-SIGNATURE_SIZE:]
    with pytest.raises(WireError, match=r"the chunk's key is not end\.key"):
        decode_chunk(swapped)


def test_a_middle_chunk_whose_signature_fails_is_tampering_where_the_chain_is_silent() -> None:
    session_id = uuid7()
    writer = ChainWriter(session_id, KEY)
    messages = [
        writer.encode([start_event()]),
        writer.encode([ev.Output(1, b"x")]),
        writer.encode([ev.End(2, "closed", 0, 1, 3, PUBLIC)]),
    ]
    spoiled = bytearray(messages[1])
    spoiled[-5] ^= 0x40  # in the signature: the digest, hence the chain, is unchanged
    verdict = verify_chain([(0, messages[0]), (1, bytes(spoiled)), (2, messages[2])], TRUSTED)
    assert (verdict.status, verdict.seq) == (Status.TAMPERED, 1)
    assert "signature does not verify" in verdict.detail


def test_recordings_of_versions_1_to_3_stay_readable_and_verifiable() -> None:
    session_id = uuid7()
    writer = ChainWriter(session_id, KEY, legacy=True)
    messages = [
        writer.encode([start_event()]),
        writer.encode([ev.Output(1, b"x")]),
        writer.encode([ev.End(2, "closed", 0, 1, 3, PUBLIC)]),
    ]
    chunks = [decode_chunk(m) for m in messages]
    assert [(c.version, c.signer) for c in chunks] == [(1, None), (1, None), (1, PUBLIC)]
    assert [c.raw[3] for c in chunks] == [0, 0, 1]  # only the end chunk is flagged SIGNED
    assert not chunk_signature_valid(chunks[0])
    assert chunk_signature_valid(chunks[2])
    verdict = verify_chain(list(enumerate(messages)), TRUSTED)
    assert verdict.status is Status.OK


def test_provenance_takes_only_chunks_a_trusted_gateway_signed() -> None:
    session_id = uuid7()
    trusted = Provenance(TRUSTED)
    real = decode_chunk(ChainWriter(session_id, KEY).encode([start_event()]))
    assert trusted.refusal(real) is None
    forger = Ed25519PrivateKey.generate()
    forged = decode_chunk(ChainWriter(session_id, forger).encode([start_event()]))
    assert "not a trusted gateway key" in (trusted.refusal(forged) or "")
    # Any key at all, when none is configured: the signature is still checked.
    assert Provenance(frozenset()).refusal(forged) is None
    unsigned = decode_chunk(encode_chunk(session_id, 0, GENESIS, [start_event()]))
    assert "unsigned chunk (wire format 1)" in (trusted.refusal(unsigned) or "")
    assert Provenance(TRUSTED, accept_unsigned=True).refusal(unsigned) is None
    spoiled = bytearray(real.raw)
    spoiled[-1] ^= 1
    assert trusted.refusal(decode_chunk(bytes(spoiled))) == "its signature does not verify"


def test_a_run_of_chained_chunks_costs_one_signature_check_and_forgeries_still_fail(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A batch judges a session's run of chunks by its last signature (it covers the
    chunks before through ``prev``); a forgery in the run is checked, and refused, alone."""

    checked: list[int] = []

    def counted(chunk: Chunk) -> bool:
        checked.append(chunk.seq)
        return chunk_signature_valid(chunk)

    monkeypatch.setattr(provenance, "chunk_signature_valid", counted)
    session_id, other_id = uuid7(), uuid7()
    writer, other = ChainWriter(session_id, KEY), ChainWriter(other_id, KEY)
    real = [writer.encode([start_event()])]
    real += [writer.encode([ev.Output(i, b"line\r\n")]) for i in range(1, 6)]
    interleaved = [other.encode([start_event()]), other.encode([ev.Output(1, b"x")])]
    forger = ChainWriter(session_id, KEY)  # the right key would not help: no signature
    forger.seq, forger.prev = 3, chain_digest(real[2])
    forged = bytearray(forger.encode([ev.Output(3, b"rm -rf /\r\n")]))
    forged[-1] ^= 1  # a forger cannot sign with the gateway's key
    batch = [decode_chunk(m) for m in real[:2] + interleaved + [bytes(forged)] + real[2:]]

    reasons = Provenance(TRUSTED).refusals(batch)

    assert reasons == [None] * 4 + ["its signature does not verify"] + [None] * 4
    # One check per run of each session, and the forgery and the real chunk of its seq
    # each on their own (a copy of a seq is never vouched for).
    assert sorted(checked) == [1, 3, 3, 5]
    # Cut short: a chunk no later chunk vouches for is checked itself.
    checked.clear()
    assert Provenance(TRUSTED).refusals(batch[:2]) == [None, None]
    assert checked == [1]
    # Whoever names a trusted key without holding it is not vouched for by a real chunk.
    spoiled = bytearray(real[5])
    spoiled[-1] ^= 1
    refused = Provenance(TRUSTED).refusals(
        [decode_chunk(m) for m in real[:5]] + [decode_chunk(bytes(spoiled))]
    )
    assert refused == [None] * 5 + ["its signature does not verify"], refused


def test_a_copy_with_a_spoiled_signature_is_never_vouched_for() -> None:
    """Issue 32 (attack on #3): a copy of a real chunk with its signature spoiled has the
    real chunk's digest (the signature is outside it), so a later real chunk would
    vouch for both; stored in the real one's place, it would make the session read
    tampered. Copies of one seq in a batch are each checked on their own."""
    session_id = uuid7()
    writer = ChainWriter(session_id, KEY)
    real = [writer.encode([start_event()])]
    real += [writer.encode([ev.Output(i, b"line\r\n")]) for i in range(1, 4)]

    def spoiled(message: bytes) -> bytes:
        return message[:-SIGNATURE_SIZE] + bytes(SIGNATURE_SIZE)

    trusted = Provenance(TRUSTED)
    copied = [real[0], real[1], spoiled(real[1]), real[2], spoiled(real[2]), real[3]]
    reasons = trusted.refusals([decode_chunk(m) for m in copied])
    refused = "its signature does not verify"
    assert reasons == [None, None, refused, None, refused, None]
    # The whole run copied with spoiled signatures and a byte-exact copy of the real
    # last chunk, in the same batch as the real chunks: the copies are refused.
    again = [*real, *(spoiled(m) for m in real[:-1]), real[-1]]
    reasons = trusted.refusals([decode_chunk(m) for m in again])
    assert reasons[:4] == [None] * 4
    assert reasons[4:7] == ["its signature does not verify"] * 3
    assert reasons[7] is None  # the same bytes as the real one: nothing new
