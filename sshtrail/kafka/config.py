"""librdkafka properties and Kafka's default partitioner, shared by both halves."""

from __future__ import annotations

from typing import Any, Final

from sshtrail.settings import Settings

#: For short-lived commands (lag, reprocess, watch): librdkafka's own log lines
#: (a connection error every 50 ms while a broker is away) are not printed;
#: failures reach the user once, as a :class:`~sshtrail.errors.BrokerError`.
QUIET: Final = {"log_level": 2}

#: The embedded broker answers a fetch with everything it has (docs/decisions.md);
#: librdkafka must accept such a response.
LARGE_FETCH: Final = {"receive.message.max.bytes": 1 << 30}


def murmur2(data: bytes) -> int:
    """Kafka's murmur2 hash, as the Java client and ``murmur2_random`` compute it."""
    seed, m, r = 0x9747B28C, 0x5BD1E995, 24
    length = len(data)
    h = (seed ^ length) & 0xFFFFFFFF
    for i in range(0, length - length % 4, 4):
        k = int.from_bytes(data[i : i + 4], "little")
        k = (k * m) & 0xFFFFFFFF
        k ^= k >> r
        k = (k * m) & 0xFFFFFFFF
        h = ((h * m) & 0xFFFFFFFF) ^ k
    tail = length % 4
    if tail:
        h ^= int.from_bytes(data[length - tail :], "little")
        h = (h * m) & 0xFFFFFFFF
    h ^= h >> 13
    h = (h * m) & 0xFFFFFFFF
    h ^= h >> 15
    return h


def partition_for(key: bytes, partitions: int) -> int:
    """The partition a keyed message lands on (Java client default partitioner)."""
    return (murmur2(key) & 0x7FFFFFFF) % partitions


def client_config(settings: Settings, **overrides: Any) -> dict[str, Any]:
    """Base librdkafka properties: servers, client id, the user's extra settings."""
    config: dict[str, Any] = {
        "bootstrap.servers": settings.bootstrap_servers,
        "client.id": f"sshtrail-{settings.instance}",
    }
    config.update(settings.kafka.client)
    config.update(overrides)
    return config
