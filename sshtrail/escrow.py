"""Masked input sealed to an escrow key: out of plain text, but not out of the record.

The gateway masks input the terminal does not echo (passwords). With an
escrow public key configured (``gateway.escrow_public_key``), it also keeps
that input, encrypted so that only the holder of the escrow private key can
read it (``sshtrail reveal``): an operator who turns echo off to type
commands blind does not turn the audit off.

Each masked input is sealed on its own, to an X25519 key: a fresh ephemeral
key pair per message, the shared secret through HKDF-SHA256 into a
ChaCha20-Poly1305 key, the session id and the event's time as associated
data (a sealed input cannot be moved to another session or moment)::

    sealed = ephemeral public key (32) || ciphertext and tag

The private key is a PEM file (``sshtrail escrow-keygen``) held by whoever
the organisation trusts to reveal -- not by the gateway, which needs only
the public key. ``docs/security.md`` says who may hold it.
"""

from __future__ import annotations

import base64
import binascii
import uuid
from pathlib import Path
from typing import Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from sshtrail.errors import ConfigError, InvalidError
from sshtrail.keyfiles import write_private

_INFO: Final = b"sshtrail sealed input v1"
_NONCE: Final = bytes(12)  # every key is used once: its ephemeral key is fresh
_KEY_SIZE: Final = 32
#: How the public key is written in the settings and in ``NAME.pub``.
PUBLIC_PREFIX: Final = "x25519:"


class RevealError(InvalidError):
    """A sealed input cannot be opened with the key given (wrong key, or altered)."""


def parse_public_key(text: str, setting: str = "gateway.escrow_public_key") -> X25519PublicKey:
    """``x25519:BASE64`` (what ``sshtrail escrow-keygen`` prints) as a key."""
    body = text.strip().removeprefix(PUBLIC_PREFIX)
    try:
        raw = base64.b64decode(body, validate=True)
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != _KEY_SIZE:
        raise ConfigError(
            "not an escrow public key (x25519: and 32 bytes in base64, from "
            "'sshtrail escrow-keygen')",
            key=setting,
        )
    return X25519PublicKey.from_public_bytes(raw)


def public_text(key: X25519PublicKey) -> str:
    return PUBLIC_PREFIX + base64.b64encode(key.public_bytes_raw()).decode()


class Sealer:
    """Seals masked input to one escrow public key."""

    def __init__(self, recipient: X25519PublicKey) -> None:
        self._recipient = recipient
        self._recipient_raw = recipient.public_bytes_raw()

    def seal(self, data: bytes, session_id: uuid.UUID, t: int) -> bytes:
        ephemeral = X25519PrivateKey.generate()
        ephemeral_raw = ephemeral.public_key().public_bytes_raw()
        key = _derive(ephemeral.exchange(self._recipient), ephemeral_raw, self._recipient_raw)
        return ephemeral_raw + ChaCha20Poly1305(key).encrypt(_NONCE, data, _aad(session_id, t))


def open_sealed(private: X25519PrivateKey, sealed: bytes, session_id: uuid.UUID, t: int) -> bytes:
    """The input sealed in ``sealed``; :class:`RevealError` if this key cannot open it."""
    if len(sealed) < _KEY_SIZE + 16:
        raise RevealError("sealed input too short")
    ephemeral_raw = sealed[:_KEY_SIZE]
    recipient_raw = private.public_key().public_bytes_raw()
    try:
        shared = private.exchange(X25519PublicKey.from_public_bytes(ephemeral_raw))
        key = _derive(shared, ephemeral_raw, recipient_raw)
        return ChaCha20Poly1305(key).decrypt(_NONCE, sealed[_KEY_SIZE:], _aad(session_id, t))
    except (InvalidTag, ValueError):
        raise RevealError(
            "cannot open this sealed input: sealed to another escrow key, or altered"
        ) from None


def generate(path: Path) -> X25519PublicKey:
    """A new escrow key pair: the private key in ``path`` (PEM, 0600), the public key in
    ``path.pub``; returns the public key."""
    private = X25519PrivateKey.generate()
    pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    write_private(path, pem)
    public = private.public_key()
    path.with_name(path.name + ".pub").write_text(public_text(public) + "\n")
    return public


def load_private(path: Path) -> X25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"{path} is not a PEM private key: {exc}") from None
    if not isinstance(key, X25519PrivateKey):
        raise ConfigError(f"{path} is not an X25519 escrow key")
    return key


def _derive(shared: bytes, ephemeral_raw: bytes, recipient_raw: bytes) -> bytes:
    return HKDF(hashes.SHA256(), _KEY_SIZE, ephemeral_raw + recipient_raw, _INFO).derive(shared)


def _aad(session_id: uuid.UUID, t: int) -> bytes:
    return _INFO + b"\x00" + session_id.bytes + t.to_bytes(8, "big")
