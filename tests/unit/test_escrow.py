"""Masked input sealed to the escrow key: readable with it, and only with it."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from sshtrail import escrow
from sshtrail.errors import ConfigError
from sshtrail.ids import uuid7


def test_sealed_input_opens_with_the_escrow_key_only(tmp_path: Path) -> None:
    public = escrow.generate(tmp_path / "escrow")
    assert (tmp_path / "escrow").stat().st_mode & 0o777 == 0o600
    sealer = escrow.Sealer(escrow.parse_public_key((tmp_path / "escrow.pub").read_text()))
    session = uuid7()
    sealed = sealer.seal(b"rm -rf /srv/data", session, 42)
    assert b"rm -rf" not in sealed
    private = escrow.load_private(tmp_path / "escrow")
    assert private.public_key().public_bytes_raw() == public.public_bytes_raw()
    assert escrow.open_sealed(private, sealed, session, 42) == b"rm -rf /srv/data"
    other = escrow.generate(tmp_path / "other")
    assert other is not None
    with pytest.raises(escrow.RevealError):
        escrow.open_sealed(escrow.load_private(tmp_path / "other"), sealed, session, 42)
    # Bound to its session and moment: it cannot be moved elsewhere in the record.
    with pytest.raises(escrow.RevealError):
        escrow.open_sealed(private, sealed, uuid.uuid4(), 42)
    with pytest.raises(escrow.RevealError):
        escrow.open_sealed(private, sealed, session, 43)
    tampered = sealed[:-1] + bytes([sealed[-1] ^ 1])
    with pytest.raises(escrow.RevealError):
        escrow.open_sealed(private, tampered, session, 42)


@pytest.mark.parametrize(
    "bad", ["", "x25519:", "x25519:abc", "ssh-ed25519 AAAA", "x25519:" + "A" * 44]
)
def test_a_bad_public_key_is_a_clear_config_error(bad: str) -> None:
    with pytest.raises(ConfigError, match=r"gateway\.escrow_public_key: not an escrow public key"):
        escrow.parse_public_key(bad)
