"""Following one session live from Kafka, as its chunks are published.

The session's partition follows from its id (the key) and the topic's
partition count; where to start follows from the id too: a UUIDv7 begins
with the millisecond it was created, so a time lookup finds its first chunk
without asking the store. Chunks of other sessions on the same partition
are skipped, and so are chunks no trusted gateway signed
(``sshtrail/provenance.py``): a forgery with the session's next seq is
logged and passed over, and the real chunk with that seq is shown.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterator

from sshtrail.errors import WireError
from sshtrail.events import Event
from sshtrail.kafka.config import partition_for
from sshtrail.kafka.ports import TopicReader
from sshtrail.provenance import Provenance
from sshtrail.wire import Chunk, decode_chunk

log = logging.getLogger(__name__)

#: Start this long before the id's timestamp: clocks of gateway and broker differ.
CLOCK_SLACK_MS = 60_000


def start_of(
    reader: TopicReader, topic: str, session_id: uuid.UUID, partitions: int
) -> tuple[int, int]:
    """The partition a session's chunks are on (of ``partitions``), and an offset at or
    before its first chunk: the log end if nothing that recent is there yet."""
    partition = partition_for(str(session_id).encode(), partitions)
    created_ms = session_id.int >> 80  # UUIDv7: 48 bits of Unix milliseconds
    # The log end is read before the look-up by time: a first chunk written between
    # the two is then after that end, not skipped by waiting behind it.
    end = reader.watermarks(topic, partition)[1]
    start = reader.offset_at(topic, partition, max(created_ms - CLOCK_SLACK_MS, 0))
    if start is None:  # nothing that recent yet: wait at the end of the log
        start = end
    return partition, start


def refused(chunk: Chunk, provenance: Provenance, where: str) -> bool:
    """Whether ``chunk`` is not to be shown (``provenance`` refuses it); logged if so."""
    reason = provenance.refusal(chunk)
    if reason is not None:
        log.warning(
            "%s: chunk %d of session %s not shown: %s", where, chunk.seq, chunk.session_id, reason
        )
    return reason is not None


def follow(
    reader: TopicReader,
    topic: str,
    session_id: uuid.UUID,
    stop: Callable[[], bool],
    provenance: Provenance,
) -> Iterator[Event]:
    """The session's events in order, live, until its end event or ``stop()``; only
    chunks ``provenance`` takes."""
    key = str(session_id).encode()
    partition, start = start_of(reader, topic, session_id, len(reader.partitions(topic)))
    reader.assign(topic, {partition: start})
    next_seq = 0
    while not stop():
        for message in reader.consume(100, 0.25):
            if message.key() != key:
                continue
            try:
                chunk = decode_chunk(message.value() or b"")
            except WireError:
                continue  # the store's dead-letter topic has it; keep following
            if chunk.seq < next_seq or refused(chunk, provenance, "watch"):
                continue  # a re-delivery, or a forgery: the real chunk may follow
            next_seq = chunk.seq + 1
            yield from chunk.events
            if chunk.end is not None:
                return
