"""Re-consuming a range of the topic into a group's writer, without touching group offsets.

Used to rebuild what a store or index lost: the messages of the range are
read by a consumer that commits nothing and written through the group's own
idempotent writer, so what is already there is counted as a duplicate and
what is missing comes back exactly as it was. ``index --rebuild`` does the
same for the search index from the stored chunks instead of Kafka.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from typing import TypeVar

from sqlalchemy import Engine, select

from consumer.messages import Received, sort_messages
from consumer.writer import Writer
from sshtrail import search
from sshtrail.errors import BrokerError, InvalidError, RetryableError
from sshtrail.kafka.ports import TopicReader
from sshtrail.models import ChunkRecord, SessionRecord
from sshtrail.provenance import Provenance
from sshtrail.wire import decode_chunk

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Bound:
    """Where a range starts or ends: an offset, or the first message at or after a time."""

    offset: int | None = None
    time: dt.datetime | None = None


@dataclass(slots=True)
class Counts:
    read: int = 0
    written: int = 0
    duplicates: int = 0
    invalid: int = 0
    #: Chunks no trusted gateway signed: kept as evidence by the store, not written.
    refused: int = 0


@dataclass(frozen=True, slots=True)
class Reprocessed:
    ranges: dict[int, tuple[int, int]]  # partition: [first, end) offsets
    read: dict[int, int]  # messages read per partition
    counts: Counts


def plan(
    reader: TopicReader,
    topic: str,
    *,
    partitions: list[int] | None,
    start: Bound,
    end: Bound | None,
) -> dict[int, tuple[int, int]]:
    """The ``[first, end)`` offsets to read of each partition (end: the log end now).

    Refuses a partition the topic does not have, a start below the oldest offset the
    broker still has (naming it), and a range that ends before it starts.
    """
    existing = reader.partitions(topic)
    chosen = partitions if partitions is not None else existing
    unknown = sorted(set(chosen) - set(existing))
    if unknown:
        raise InvalidError(
            f"{topic} has no partition {', '.join(map(str, unknown))}: its partitions are "
            f"0..{max(existing)}"
        )
    return {p: _range(reader, topic, p, start=start, end=end) for p in sorted(set(chosen))}


def reprocess(
    reader: TopicReader,
    topic: str,
    writer: Writer,
    *,
    ranges: dict[int, tuple[int, int]],
    batch_size: int = 2000,
    timeout: float = 30.0,
    retry: Retry | None = None,
    provenance: Provenance | None = None,
) -> Reprocessed:
    """Read each partition's ``[first, end)`` of ``ranges`` (see :func:`plan`) through
    ``writer``. A database or broker error that may pass is retried (``retry``); a
    message that is not a chunk is counted, not dead-lettered again; a chunk
    ``provenance`` refuses is handed to ``writer.refuse`` (evidence), not written."""
    retry = retry or Retry()
    read = dict.fromkeys(ranges, 0)
    counts = Counts()
    todo = {p: r for p, r in ranges.items() if r[0] < r[1]}
    reader.assign(topic, {p: first for p, (first, _) in todo.items()})
    deadline = time.monotonic() + timeout
    while todo and time.monotonic() < deadline:
        messages = [
            m
            for m in retry.call(partial(reader.consume, batch_size, 1.0), "reading the topic")
            if m.partition() in todo and (m.offset() or 0) < todo[m.partition() or 0][1]
        ]
        if not messages:
            continue
        batch = sort_messages(messages, None, provenance)
        if batch.refused:
            retry.call(partial(writer.refuse, batch.refused), "keeping refused chunks")
            counts.refused += len(batch.refused)
        written = retry.call(partial(writer.write, batch.good), "writing a batch")
        deadline = time.monotonic() + timeout
        counts.read += len(messages)
        counts.written += written.written
        counts.duplicates += written.duplicates
        counts.invalid += len(batch.bad)
        for message in messages:
            partition, offset = message.partition() or 0, message.offset() or 0
            read[partition] += 1
            if partition in todo and offset + 1 >= todo[partition][1]:
                todo.pop(partition)
    if todo:
        raise BrokerError(
            f"partitions {sorted(todo)} did not deliver their range in {timeout:.0f}s"
        )
    return Reprocessed(ranges, read, counts)


@dataclass(frozen=True, slots=True)
class Retry:
    """How often and how patiently a failure that may pass is tried again: a database
    that restarts or deadlocks with the live group, a broker that is away."""

    attempts: int = 8
    initial_s: float = 0.5
    max_s: float = 10.0

    def call(self, attempt: Callable[[], T], what: str) -> T:
        delay = self.initial_s
        for left in range(self.attempts - 1, -1, -1):
            try:
                return attempt()
            except RetryableError as exc:
                if left == 0 or (isinstance(exc, BrokerError) and exc.fatal):
                    raise
                log.warning("%s failed, retrying in %.1f s (%d left): %s", what, delay, left, exc)
                time.sleep(delay)
                delay = min(delay * 2, self.max_s)
        raise AssertionError("unreachable")


def _range(
    reader: TopicReader, topic: str, partition: int, *, start: Bound, end: Bound | None
) -> tuple[int, int]:
    low, high = reader.watermarks(topic, partition)
    first = _resolve(reader, topic, partition, start, high)
    if first < low:
        raise InvalidError(
            f"partition {partition}: offset {first} is no longer retained; "
            f"the earliest offset is {low}"
        )
    last = high if end is None else min(_resolve(reader, topic, partition, end, high), high)
    if end is not None and end.offset is not None and end.offset < first:
        raise InvalidError(
            f"partition {partition}: the range ends at offset {end.offset}, before it starts "
            f"at {first} (the range is [from, to))"
        )
    return first, max(last, first)


def _resolve(reader: TopicReader, topic: str, partition: int, bound: Bound, high: int) -> int:
    if bound.offset is not None:
        return bound.offset
    assert bound.time is not None
    found = reader.offset_at(topic, partition, int(bound.time.timestamp() * 1000))
    return found if found is not None else high  # none that late: the end


def rebuild_index(store: Engine, writer: Writer, batch: int = 2000) -> Counts:
    """Index every stored session again from its stored chunks, in seq order."""
    counts = Counts()
    pending: list[Received] = []
    for received in _stored(store):
        pending.append(received)
        if len(pending) >= batch:
            _write(writer, pending, counts)
    _write(writer, pending, counts)
    return counts


def _write(writer: Writer, pending: list[Received], counts: Counts) -> None:
    if pending:
        result = writer.write(pending)
        counts.read += len(pending)
        counts.written += result.written
        counts.duplicates += result.duplicates
        pending.clear()


def _stored(store: Engine) -> Iterator[Received]:
    chunks, sessions = ChunkRecord.__table__, SessionRecord.__table__
    query = (
        select(chunks.c.data, chunks.c.partition, chunks.c.offset, chunks.c.received_at)
        .join(sessions, sessions.c.id == chunks.c.session_id)
        .order_by(sessions.c.started_at, chunks.c.session_id, chunks.c.seq)
    )
    with store.connect() as conn:
        for data, partition, offset, received_at in conn.execution_options(yield_per=1000).execute(
            query
        ):
            yield Received(decode_chunk(data), partition, offset, received_at)


def drop_index(index: Engine) -> None:
    search.drop_schema(index)
    search.ensure_schema(index)
