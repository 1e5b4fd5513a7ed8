"""Key files, created with mode 0600: Ed25519 in OpenSSH format (gateway and demo), any
private key written once (escrow)."""

from __future__ import annotations

import os
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from sshtrail.errors import ConfigError


def create_ed25519(path: Path, comment: str) -> None:
    """Write a new private key to ``path`` and its public key to ``path.pub``.

    Fails if ``path`` exists: a key is never silently replaced.
    """
    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.OpenSSH,
        serialization.NoEncryption(),
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    )
    write_private(path, private)
    pub = public_path(path)
    partial = pub.with_name(f".{pub.name}.{os.getpid()}.{os.urandom(4).hex()}")
    partial.write_bytes(public + f" {comment}\n".encode())
    partial.replace(pub)


def write_private(path: Path, data: bytes) -> None:
    """Write a new private key file, 0600 in a 0700 folder; fails if ``path`` exists.

    Written aside, then linked into place: a process that finds the file (two
    console processes starting at once) never reads it half written."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    partial = path.with_name(f".{path.name}.{os.getpid()}.{os.urandom(4).hex()}")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.link(partial, path)  # FileExistsError if another made it meanwhile
    finally:
        partial.unlink()


def public_path(path: Path) -> Path:
    return path.with_name(path.name + ".pub")


def public_line(path: Path) -> str:
    """``ssh-ed25519 AAAA...`` of a key created by :func:`create_ed25519` (no comment)."""
    return " ".join(public_path(path).read_text().split()[:2])


def ensure_ed25519(path: Path, comment: str) -> Path:
    if not path.exists():
        create_ed25519(path, comment)
    return path


def load_ed25519_public(path: Path) -> bytes:
    """The raw 32 bytes of an OpenSSH ``ssh-ed25519`` public key file (or of ``path.pub``)."""
    source = path if path.suffix == ".pub" or not public_path(path).exists() else public_path(path)
    try:
        text = source.read_text(errors="replace")
    except OSError as exc:
        raise ConfigError(f"cannot read {source}: {exc.strerror}") from None
    return ed25519_public(text, str(source))


def ed25519_public(line: str, where: str, setting: str | None = None) -> bytes:
    """The raw 32 bytes of an OpenSSH public key line (``ssh-ed25519 AAAA... comment``);
    a :class:`ConfigError` naming ``where`` (and ``setting``) if it is not one."""
    try:
        key = serialization.load_ssh_public_key(" ".join(line.split()[:2]).encode())
    except (ValueError, UnicodeEncodeError) as exc:
        raise ConfigError(f"{where}: not an OpenSSH public key ({exc})", key=setting) from None
    if not isinstance(key, Ed25519PublicKey):
        raise ConfigError(f"{where}: not an ssh-ed25519 key (only those are taken)", key=setting)
    return key.public_bytes_raw()


def load_ed25519_private(path: Path, setting: str) -> Ed25519PrivateKey:
    """An OpenSSH Ed25519 private key file; :class:`ConfigError` naming ``setting``."""
    try:
        key = serialization.load_ssh_private_key(path.read_bytes(), password=None)
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}", key=setting) from None
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"{path} is not an OpenSSH private key: {exc}", key=setting) from None
    if not isinstance(key, Ed25519PrivateKey):
        raise ConfigError(f"{path} must be an Ed25519 key", key=setting)
    return key
