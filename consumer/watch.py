"""Following one session live from Kafka, as its chunks are published.

The session's partition follows from its id (the key) and the topic's
partition count; where to start follows from the id too: a UUIDv7 begins
with the millisecond it was created, so ``offsets_for_times`` finds its
first chunk without asking the store. Chunks of other sessions on the same
partition are skipped.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator

from confluent_kafka import KafkaException, TopicPartition

from sshtrail.errors import BrokerError, WireError
from sshtrail.events import Event
from sshtrail.kafka import partition_for, reason, standalone_consumer, topic_metadata
from sshtrail.settings import Settings
from sshtrail.wire import decode_chunk

#: Start this long before the id's timestamp: clocks of gateway and broker differ.
CLOCK_SLACK_MS = 60_000


def follow(
    settings: Settings, session_id: uuid.UUID, stop: Callable[[], bool], timeout: float = 10.0
) -> Iterator[Event]:
    """The session's events in order, live, until its end event or ``stop()``."""
    topic, key = settings.kafka.topic, str(session_id).encode()
    reader = standalone_consumer(settings, "watch")
    try:
        partitions = topic_metadata(reader, topic, timeout).partitions
        partition = partition_for(key, len(partitions))
        created_ms = session_id.int >> 80  # UUIDv7: 48 bits of Unix milliseconds
        since = max(created_ms - CLOCK_SLACK_MS, 0)
        [start] = reader.offsets_for_times([TopicPartition(topic, partition, since)], timeout)
        if start.offset < 0:  # nothing that recent yet: wait at the end of the log
            _low, high = reader.get_watermark_offsets(start, timeout=timeout)
            start = TopicPartition(topic, partition, high)
        reader.assign([start])
        next_seq = 0
        while not stop():
            message = reader.poll(0.25)
            if message is None or message.error() is not None or message.key() != key:
                continue
            try:
                chunk = decode_chunk(message.value() or b"")
            except WireError:
                continue  # the store's dead-letter topic has it; keep following
            if chunk.seq < next_seq:
                continue  # a re-delivery
            next_seq = chunk.seq + 1
            yield from chunk.events
            if chunk.end is not None:
                return
    except KafkaException as exc:
        raise BrokerError(f"watch: {settings.bootstrap_servers}: {reason(exc)}") from None
    finally:
        reader.close()
