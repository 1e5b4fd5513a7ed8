"""Session identifiers: UUIDv7 (RFC 9562), time-ordered so ids sort by start."""

from __future__ import annotations

import os
import time
import uuid


def uuid7(unix_ms: int | None = None) -> uuid.UUID:
    """Return a new UUIDv7 whose first 48 bits are ``unix_ms`` (now by default).

    The remaining 74 bits are random, which keeps ids from several gateways
    unique without coordination.
    """
    ms = time.time_ns() // 1_000_000 if unix_ms is None else unix_ms
    if not 0 <= ms < 1 << 48:
        raise ValueError(f"timestamp out of UUIDv7 range: {ms}")
    rand = int.from_bytes(os.urandom(10), "big")
    rand_a = rand >> 68  # 12 bits
    rand_b = rand & ((1 << 62) - 1)  # 62 bits
    value = (ms << 80) | (0x7 << 76) | (rand_a << 64) | (0b10 << 62) | rand_b
    return uuid.UUID(int=value)


def is_uuid7(value: uuid.UUID) -> bool:
    """True when ``value`` carries version 7 and the RFC 9562 variant."""
    return value.version == 7 and value.variant == uuid.RFC_4122
