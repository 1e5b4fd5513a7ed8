"""The gateway's own keys: its SSH host key and the key that signs recordings.

Both are Ed25519, created on first start with mode 0600 and reused after, so
operators' ``known_hosts`` entries and auditors' trusted signing keys stay valid
across restarts. The public half is written beside each as ``NAME.pub``.
"""

from __future__ import annotations

import logging
from pathlib import Path

import asyncssh
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from sshtrail.errors import ConfigError
from sshtrail.keyfiles import create_ed25519, load_ed25519_private

log = logging.getLogger(__name__)


def _read(path: Path, comment: str, setting: str) -> bytes:
    if not path.exists():
        create_ed25519(path, comment)
        log.info("created %s (%s)", path, comment)
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}", key=setting) from None


def host_key(path: Path) -> asyncssh.SSHKey:
    """The gateway's SSH host key, created when missing."""
    data = _read(path, "sshtrail gateway host key", "gateway.host_key")
    try:
        return asyncssh.import_private_key(data)
    except (asyncssh.KeyImportError, ValueError) as exc:
        raise ConfigError(f"{path} is not a private key: {exc}", key="gateway.host_key") from None


def signing_key(path: Path) -> Ed25519PrivateKey:
    """The Ed25519 key that signs the end of every recording, created when missing."""
    _read(path, "sshtrail recording signing key", "gateway.signing_key")
    return load_ed25519_private(path, "gateway.signing_key")


def client_key(path: Path, target: str) -> asyncssh.SSHKey:
    """A private key the gateway logs in to a target with."""
    setting = f"targets.{target}.key"
    try:
        return asyncssh.read_private_key(path)
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}", key=setting) from None
    except (asyncssh.KeyImportError, ValueError) as exc:
        raise ConfigError(f"{path} is not a usable private key: {exc}", key=setting) from None
