"""confluent-kafka configuration and topic administration, shared by both halves.

KafkaException is translated to :class:`~sshtrail.errors.BrokerError` here,
once; callers never see librdkafka's error types.
"""

from __future__ import annotations

import uuid
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

from sshtrail.errors import BrokerError
from sshtrail.settings import Settings


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


#: For short-lived commands (lag, reprocess, watch): librdkafka's own log lines
#: (a connection error every 50 ms while a broker is away) are not printed;
#: failures reach the user once, as a :class:`BrokerError` naming the cause.
QUIET = {"log_level": 2}


def standalone_consumer(settings: Settings, purpose: str) -> Consumer:
    """A consumer for a command that reads partitions it assigns itself: its own
    throw-away group id, nothing committed, quiet (see :data:`QUIET`)."""
    return Consumer(
        client_config(
            settings,
            **{
                "group.id": f"sshtrail-{purpose}-{uuid.uuid4().hex[:8]}",
                "enable.auto.commit": False,
                "enable.auto.offset.store": False,
                # The embedded broker answers a fetch with all it has (docs/decisions.md).
                "receive.message.max.bytes": 1 << 30,
                **QUIET,
            },
        )
    )


def reason(exc: KafkaException) -> str:
    """The human part of a librdkafka error ("Failed to get metadata: ...")."""
    error = exc.args[0] if exc.args else None
    return error.str() if isinstance(error, KafkaError) else str(exc)


def topic_metadata(client: Consumer | AdminClient, topic: str, timeout: float) -> Any:
    """``topic``'s metadata (its ``partitions`` by id); :class:`BrokerError` if it does
    not exist."""
    found = client.list_topics(topic, timeout=timeout).topics.get(topic)
    if found is None or found.error is not None:
        raise BrokerError(f"topic {topic} does not exist")
    return found


def admin_client(settings: Settings) -> AdminClient:
    """An admin client; quiet, since its failures are raised (see :data:`QUIET`)."""
    return AdminClient(client_config(settings, **QUIET))


def ensure_topics(settings: Settings, timeout: float = 30.0) -> list[str]:
    """Create the sessions topic and its dead-letter topic if missing.

    Returns the names created. An existing topic is left as it is, even if
    its partition count differs from the settings (changing that reorders
    keys and is an operator's decision, see docs/operations.md).
    """
    admin = admin_client(settings)
    wanted = [settings.kafka.topic, settings.kafka.dlq_topic]
    try:
        existing = admin.list_topics(timeout=timeout).topics
    except KafkaException as exc:
        raise BrokerError(f"cannot reach {settings.bootstrap_servers}: {reason(exc)}") from None
    missing = [
        NewTopic(
            name,
            settings.kafka.partitions,
            settings.kafka.replication_factor,
            config=dict(settings.kafka.topic_config),
        )
        for name in wanted
        if name not in existing
    ]
    created = []
    for name, future in (
        admin.create_topics(missing, operation_timeout=timeout).items() if missing else []
    ):
        try:
            future.result(timeout)
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:  # a racing creator won
                raise BrokerError(f"cannot create topic {name}: {reason(exc)}") from None
        else:
            created.append(name)
    return created
