"""Control messages: signature, the Kafka key they are bound to, freshness against now."""

from __future__ import annotations

import msgspec
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from sshtrail import control

SECOND = 1_000_000_000


def unlock(at: int = 0) -> control.Unlock:
    return control.Unlock(
        request_id="u1", at=at or control.now_ns(), operator="alice", auditor="ann", reason="ok"
    )


def test_a_request_is_taken_only_under_the_key_it_was_signed_for() -> None:
    signer = Ed25519PrivateKey.generate()
    trusted = {signer.public_key().public_bytes_raw()}
    request = unlock()
    value = control.encode(request, signer)
    assert control.decode(value, trusted, b"operator:alice") == request
    for other in (b"operator:alicf", b"operator:alice ", b"", b"result:u1"):
        with pytest.raises(control.ControlError, match="re-sent under another key"):
            control.decode(value, trusted, other)
    terminate = control.Terminate(
        request_id="t",
        at=1,
        session="0190f0e0-0000-7000-8000-000000000001",
        auditor="a",
        reason="r",
    )
    with pytest.raises(control.ControlError, match="another key"):
        control.decode(control.encode(terminate, signer), trusted, b"operator:alice")


def test_freshness_is_judged_against_now_either_way() -> None:
    now = 1_000_000 * SECOND
    assert control.fresh(unlock(now - 119 * SECOND), now)
    assert not control.fresh(unlock(now - 121 * SECOND), now)
    assert not control.fresh(unlock(now + 121 * SECOND), now)


def _envelope(value: bytes) -> dict[str, object]:
    decoded: dict[str, object] = msgspec.json.decode(value)
    return decoded


def _reencoded(envelope: dict[str, object]) -> bytes:
    return msgspec.json.encode(envelope)


def test_each_refusal_says_why() -> None:
    """What a producer on the control topic can send, refused each with its own reason.
    The first two name a trusted key: only the signature check refuses them (issue 38:
    a decode without it refused every earlier test's message all the same)."""
    signer = Ed25519PrivateKey.generate()
    trusted = {signer.public_key().public_bytes_raw()}
    request = unlock()
    good = _envelope(control.encode(request, signer))
    key = b"operator:alice"

    other_signature = _envelope(control.encode(request, Ed25519PrivateKey.generate()))
    bad_signature = {**good, "sig": other_signature["sig"]}
    with pytest.raises(control.ControlError, match=r"^the signature does not match"):
        control.decode(_reencoded(bad_signature), trusted, key)

    changed = control.encode(
        control.Unlock(
            request_id="u1", at=request.at, operator="alice", auditor="eve", reason="ok"
        ),
        Ed25519PrivateKey.generate(),
    )
    body_swapped = {**good, "body": _envelope(changed)["body"]}
    with pytest.raises(control.ControlError, match=r"^the signature does not match"):
        control.decode(_reencoded(body_swapped), trusted, key)

    stranger = control.encode(request, Ed25519PrivateKey.generate())
    with pytest.raises(control.ControlError, match=r"^signed by a key that is not trusted"):
        control.decode(stranger, trusted, key)

    oversize = b" " * (control.MAX_MESSAGE + 1)
    with pytest.raises(control.ControlError, match=r"^a message of \d+ bytes \(at most"):
        control.decode(oversize, trusted, key)

    with pytest.raises(control.ControlError, match=r"^not a signed control message"):
        control.decode(b'{"body": 1}', trusted, key)

    # And the good one is taken: the refusals above are not of everything.
    assert control.decode(_reencoded(good), trusted, key) == request


def test_a_stale_termination_is_not_fresh() -> None:
    now = control.now_ns()
    terminate = control.Terminate(
        request_id="t",
        at=now - (control.FRESH_S + 1) * SECOND,
        session="0190f0e0-0000-7000-8000-000000000001",
        auditor="a",
        reason="r",
    )
    assert not control.fresh(terminate, now)
    assert control.fresh(msgspec.structs.replace(terminate, at=now - SECOND), now)
