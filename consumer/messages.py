"""What the consumer groups take from Kafka: decoded chunks, rejects for the DLQ, and
chunks refused as not from a trusted gateway (``sshtrail/provenance.py``)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from sshtrail.errors import MessageError, WireError
from sshtrail.kafka.ports import Message
from sshtrail.provenance import Provenance
from sshtrail.wire import Chunk, decode_chunk


@dataclass(frozen=True, slots=True)
class Received:
    """A chunk and where it came from."""

    chunk: Chunk
    partition: int
    offset: int
    #: When the gateway published it (the message's CreateTime), UTC.
    published_at: dt.datetime


@dataclass(frozen=True, slots=True)
class Refused:
    """A chunk that decodes but is not taken as its session's: no trusted gateway signed
    it (a forgery, or an unsigned chunk). The store keeps it as evidence."""

    received: Received
    reason: str


@dataclass(frozen=True, slots=True)
class Rejected:
    """A message that goes to the dead-letter topic: not a chunk, or not storable."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    error: MessageError
    #: Headers the dead letter carries besides its origin (e.g. that it was truncated).
    headers: tuple[tuple[str, bytes], ...] = ()


@dataclass(slots=True)
class Batch:
    """One ``consume()`` worth of messages, sorted into good and bad.

    ``ends`` is the next offset to commit per partition: one past the last
    message of the batch, good or bad. ``epochs`` is the assignment epoch of
    each partition when the batch was fetched: a partition revoked since
    (whatever was assigned again after) makes its messages stale.
    """

    good: list[Received] = field(default_factory=list)
    bad: list[Rejected] = field(default_factory=list)
    refused: list[Refused] = field(default_factory=list)
    ends: dict[int, int] = field(default_factory=dict)
    epochs: dict[int, int] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.good) + len(self.bad) + len(self.refused)

    def drop_partitions(self, partitions: Iterable[int]) -> None:
        """Forget what came from ``partitions`` (revoked: their new owner re-reads it)."""
        gone = set(partitions)
        if not gone & self.ends.keys():
            return
        self.good = [r for r in self.good if r.partition not in gone]
        self.bad = [r for r in self.bad if r.partition not in gone]
        self.refused = [r for r in self.refused if r.received.partition not in gone]
        self.ends = {p: end for p, end in self.ends.items() if p not in gone}

    def drop_before(self, partition: int, offset: int) -> None:
        """Forget the partition's messages below ``offset`` (already accounted for)."""
        self.good = [r for r in self.good if r.partition != partition or r.offset >= offset]
        self.bad = [r for r in self.bad if r.partition != partition or r.offset >= offset]
        self.refused = [
            r
            for r in self.refused
            if r.received.partition != partition or r.received.offset >= offset
        ]
        kept = [r.partition for r in self.good] + [r.partition for r in self.bad]
        kept += [r.received.partition for r in self.refused]
        if partition not in kept:
            self.ends.pop(partition, None)

    def stale(self, epochs: Mapping[int, int], assigned: set[int]) -> set[int]:
        """Partitions of this batch no longer assigned as they were when it was fetched."""
        return {
            p for p in self.ends if p not in assigned or epochs.get(p, 0) != self.epochs.get(p, 0)
        }


def sort_messages(
    messages: Iterable[Message],
    epochs: Mapping[int, int] | None = None,
    provenance: Provenance | None = None,
) -> Batch:
    """Decode every message; what does not decode is kept for the dead-letter topic,
    and a chunk ``provenance`` refuses goes to ``refused`` (None: every chunk is taken)."""
    batch = Batch()
    received: list[Received] = []
    for message in messages:
        topic, partition, offset = message.topic() or "", message.partition(), message.offset()
        assert partition is not None  # set on every fetched message
        assert offset is not None
        batch.ends[partition] = max(batch.ends.get(partition, 0), offset + 1)
        key, value = message.key(), message.value()
        try:
            chunk = _decode(key, value)
        except WireError as exc:
            exc.partition, exc.offset = partition, offset
            batch.bad.append(Rejected(topic, partition, offset, key, value, exc))
            continue
        received.append(Received(chunk, partition, offset, _timestamp(message)))
    if provenance is None:
        batch.good = received
    else:
        reasons = provenance.refusals([r.chunk for r in received])
        for taken, reason in zip(received, reasons, strict=True):
            if reason is None:
                batch.good.append(taken)
            else:
                batch.refused.append(Refused(taken, reason))
    if epochs is not None:
        batch.epochs = {p: epochs.get(p, 0) for p in batch.ends}
    return batch


def _decode(key: bytes | None, value: bytes | None) -> Chunk:
    if value is None:
        raise WireError("empty message (no value)")
    chunk = decode_chunk(value)
    if key != str(chunk.session_id).encode():
        # Keyed by something else, it may sit on the wrong partition, out of order.
        shown = key[:64].decode("ascii", "backslashreplace") if key is not None else None
        raise WireError(
            f"message key {shown!r} is not the chunk's session id",
            session_id=str(chunk.session_id),
            seq=chunk.seq,
        )
    return chunk


def _timestamp(message: Message) -> dt.datetime:
    kind, millis = message.timestamp()
    if kind == 0 or millis < 0:  # TIMESTAMP_NOT_AVAILABLE
        return dt.datetime.now(dt.UTC)
    return dt.datetime.fromtimestamp(millis / 1000, dt.UTC)
