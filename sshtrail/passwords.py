"""Password hashes of operators (the gateway) and auditors (the web console).

``scrypt$N$r$p$salt$hash``, made by ``sshtrail password-hash``. Checking one
costs the same whether or not it matches (``hmac.compare_digest``), and a
caller checks a dummy hash when the account does not exist, so timing
tells nothing about names.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os

#: scrypt parameters for new password hashes (about 50 ms and 16 MiB per check).
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1
#: The largest cost a stored hash may ask for: a hash with N = 2**30 in the
#: settings would take gigabytes per check.
MAX_N = 2**20


def hash_password(password: str) -> str:
    """A ``scrypt$N$r$p$salt$hash`` string for ``password_hash`` settings."""
    salt = os.urandom(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P)
    encode = base64.b64encode
    fields = [
        str(SCRYPT_N),
        str(SCRYPT_R),
        str(SCRYPT_P),
        encode(salt).decode(),
        encode(digest).decode(),
    ]
    return "$".join(["scrypt", *fields])


def verify_password(stored: str, password: str) -> bool:
    """Whether ``password`` is the one ``stored`` was made from; False for a
    malformed hash. Slow on purpose (scrypt): call off an event loop."""
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt" or not 1 < int(n) <= MAX_N or int(r) * int(p) > 64:
            return False
        expected = base64.b64decode(digest)
        actual = hashlib.scrypt(
            password.encode(),
            salt=base64.b64decode(salt),
            n=int(n),
            r=int(r),
            p=int(p),
            maxmem=256 << 20,
            dklen=len(expected),
        )
    except ValueError:
        return False
    return hmac.compare_digest(actual, expected)


def well_formed(stored: str) -> bool:
    """Whether ``stored`` looks like a hash :func:`hash_password` makes."""
    parts = stored.split("$")
    if len(parts) != 6 or parts[0] != "scrypt":
        return False
    try:
        n, r, p = (int(part) for part in parts[1:4])
        base64.b64decode(parts[4], validate=True)
        base64.b64decode(parts[5], validate=True)
    except ValueError:
        return False
    return 1 < n <= MAX_N and n & (n - 1) == 0 and r >= 1 and p >= 1 and r * p <= 64
