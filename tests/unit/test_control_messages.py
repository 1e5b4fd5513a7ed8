"""Control messages: signature, the Kafka key they are bound to, freshness against now."""

from __future__ import annotations

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
