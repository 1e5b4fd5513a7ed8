"""Proof that the store group lost nothing: every offset it committed past is accounted for.

Lag says how far a group is behind; it cannot say whether what the group
committed past was written. This check can. For each partition of the
sessions topic, every message below the store group's committed offset
must be one of:

* **stored** -- its chunk (session id, seq) is in the store;
* **dead-lettered** -- the dead-letter topic holds a letter from its
  partition and offset;
* **quarantined** -- its session is quarantined (the database refused it),
  and the letter is in the dead-letter topic;
* **deleted** -- its session was deleted by a retention rule or by hand, and its
  signed tombstone is in the store (consumer/deletion.py);

anything else is **missing**. Offsets the group committed past that the
broker no longer has (retention deleted them) cannot be checked and are
reported as such. Offsets retention deleted *before the group read them*
are **DATA-LOSS**, recordings that were never stored: those the group
found gone and recorded in the dead-letter topic as it moved past them
(``sshtrail.lost.end``, :class:`~sshtrail.errors.OffsetsLost`), and those
below the partition's first offset while the group's committed offset is
still below it -- unless the store has what they carried anyway (stored chunks
read from those offsets, or tombstones of deleted sessions:
:mod:`consumer.expired`): then they are **expired, stored** and fine.
"""

from __future__ import annotations

import datetime as dt
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from sqlalchemy import Engine, select, tuple_

from consumer.deadletter import (
    HEADER_GROUP,
    HEADER_LOST_END,
    HEADER_OFFSET,
    HEADER_PARTITION,
    HEADER_TOPIC,
)
from consumer.expired import Expired, account
from sshtrail.errors import BrokerError, WireError
from sshtrail.kafka.ports import Message, TopicReader
from sshtrail.models import ChunkRecord, SessionRecord
from sshtrail.states import SessionStatus
from sshtrail.tables import DELETIONS
from sshtrail.wire import decode_chunk

CHUNKS = ChunkRecord.__table__
SESSIONS = SessionRecord.__table__
#: Messages looked up in the store at once.
BATCH = 1000


@dataclass(slots=True)
class PartitionReport:
    """What the check found in one partition."""

    partition: int
    committed: int | None
    low: int
    high: int
    checked: tuple[int, int] = (0, 0)  # [first, end) offsets read
    stored: int = 0
    dead_lettered: int = 0
    quarantined: int = 0
    #: Offsets whose sessions were deleted (their tombstones stored).
    deleted: int = 0
    missing: list[int] = field(default_factory=list)
    #: [first, end) offsets retention deleted before the group read them.
    data_loss: tuple[int, int] | None = None
    #: [first, end) spans the group found deleted and recorded as it moved past them.
    lost: list[tuple[int, int]] = field(default_factory=list)
    #: [first, end) offsets the group had read that retention deleted since (unchecked).
    expired: tuple[int, int] | None = None
    #: Spans retention deleted before the group read them, accounted for from the store:
    #: fine when none of it is lost (then neither ``data_loss`` nor ``lost`` has it).
    accounted: list[Expired] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.missing and self.data_loss is None and not self.lost


def check(
    reader: TopicReader,
    store: Engine,
    *,
    topic: str,
    dlq_topic: str,
    group: str,
    committed: dict[int, int],
    partitions: Sequence[int] | None = None,
    since: dt.datetime | None = None,
    timeout: float = 30.0,
) -> list[PartitionReport]:
    """Check ``partitions`` (default all) of ``topic`` below the ``committed`` offsets."""
    chosen = list(partitions) if partitions is not None else reader.partitions(topic)
    reports = [_bounds(reader, topic, p, committed.get(p), since) for p in chosen]
    letters = _dead_letters(reader, dlq_topic, topic, group, timeout)
    count = len(reader.partitions(topic))
    for report in reports:
        report.lost = sorted(letters.lost.get(report.partition, []))
        _account_expired(reader, store, report, topic=topic, partitions=count, timeout=timeout)
        first, end = report.checked
        if first >= end:
            continue
        for messages in _read(reader, topic, report.partition, (first, end), timeout):
            _account(store, report, messages, letters)
    return reports


def _bounds(
    reader: TopicReader,
    topic: str,
    partition: int,
    committed: int | None,
    since: dt.datetime | None,
) -> PartitionReport:
    low, high = reader.watermarks(topic, partition)
    report = PartitionReport(partition, committed, low, high)
    if committed is None:
        return report  # the group never committed here: nothing it could have skipped
    if committed < low:
        report.data_loss = (committed, low)
    elif low > 0:
        report.expired = (0, low)
    first = low
    if since is not None:
        at = reader.offset_at(topic, partition, int(since.timestamp() * 1000))
        first = max(first, at if at is not None else committed)
    report.checked = (first, max(first, min(committed, high)))
    return report


def _account_expired(
    reader: TopicReader,
    store: Engine,
    report: PartitionReport,
    *,
    topic: str,
    partitions: int,
    timeout: float,
) -> None:
    """Spans retention took before the group read them (``data_loss``, ``lost``) that the
    store has anyway are moved to ``accounted``; what is lost stays where it was."""
    spans = ([report.data_loss] if report.data_loss else []) + report.lost
    still_lost: list[tuple[int, int]] = []
    for span in spans:
        kept_at = _published_at(reader, topic, report, span[1], timeout)
        found = account(store, report.partition, span, partitions, kept_at)
        report.accounted.append(found)
        if span == report.data_loss:
            report.data_loss = span if found.lost else None
        elif found.lost:
            still_lost.append(span)
    report.lost = still_lost


def _published_at(
    reader: TopicReader, topic: str, report: PartitionReport, offset: int, timeout: float
) -> dt.datetime | None:
    """When the message at ``offset`` was published, if the broker still has it."""
    if not report.low <= offset < report.high:
        return None
    for messages in _read(reader, topic, report.partition, (offset, offset + 1), timeout):
        _kind, millis = messages[0].timestamp()
        return dt.datetime.fromtimestamp(millis / 1000, dt.UTC)
    return None


@dataclass(slots=True)
class _Letters:
    #: (partition, offset) of every message dead-lettered from the topic.
    messages: set[tuple[int, int]] = field(default_factory=set)
    #: partition -> [first, end) spans the group recorded as lost.
    lost: dict[int, list[tuple[int, int]]] = field(default_factory=dict)


def _dead_letters(
    reader: TopicReader, dlq_topic: str, origin: str, group: str, timeout: float
) -> _Letters:
    """What the dead-letter topic says about ``origin``: letters of any group (a message
    one group found invalid, every group does), losses of ``group`` only."""
    found = _Letters()
    try:
        partitions = reader.partitions(dlq_topic)
    except BrokerError:  # no dead-letter topic: no letters
        return found
    for partition in partitions:
        low, high = reader.watermarks(dlq_topic, partition)
        for messages in _read(reader, dlq_topic, partition, (low, high), timeout):
            for message in messages:
                headers = dict(message.headers() or [])
                if headers.get(HEADER_TOPIC, b"").decode() != origin:
                    continue
                try:
                    where = int(headers[HEADER_PARTITION]), int(headers[HEADER_OFFSET])
                    end = int(headers[HEADER_LOST_END]) if HEADER_LOST_END in headers else None
                except (KeyError, ValueError):
                    continue
                if end is None:
                    found.messages.add(where)
                elif headers.get(HEADER_GROUP, b"").decode() == group:
                    found.lost.setdefault(where[0], []).append((where[1], end))
    return found


def _read(
    reader: TopicReader, topic: str, partition: int, span: tuple[int, int], timeout: float
) -> Iterable[list[Message]]:
    """The messages of the ``[first, end)`` span of one partition, a batch at a time."""
    first, end = span
    if first >= end:
        return
    reader.assign(topic, {partition: first})
    position = first
    quiet_since = time.monotonic()
    while position < end:
        # No more than the span holds: a consume() waits its whole timeout for as many
        # messages as it asks for.
        wanted = min(BATCH, end - position)
        messages = [m for m in reader.consume(wanted, 0.5) if (m.offset() or 0) < end]
        if not messages:
            if time.monotonic() - quiet_since > timeout:
                raise TimeoutError(
                    f"partition {partition} of {topic} gave nothing from offset {position} "
                    f"in {timeout:.0f}s"
                )
            continue
        quiet_since = time.monotonic()
        position = max(m.offset() or 0 for m in messages) + 1
        yield messages


def _account(
    store: Engine, report: PartitionReport, messages: list[Message], letters: _Letters
) -> None:
    keys: dict[int, tuple[uuid.UUID, int] | None] = {}
    for message in messages:
        offset = message.offset() or 0
        try:
            chunk = decode_chunk(message.value() or b"")
            keys[offset] = (chunk.session_id, chunk.seq)
        except WireError:
            keys[offset] = None
    wanted = sorted({key for key in keys.values() if key is not None})
    stored: set[tuple[uuid.UUID, int]] = set()
    quarantined: set[uuid.UUID] = set()
    deleted: set[uuid.UUID] = set()
    if wanted:
        with store.connect() as conn:
            pairs = tuple_(CHUNKS.c.session_id, CHUNKS.c.seq).in_(wanted)
            stored = {
                (sid, seq)
                for sid, seq in conn.execute(select(CHUNKS.c.session_id, CHUNKS.c.seq).where(pairs))
            }
            sessions = sorted({sid for sid, _ in wanted})
            refused = select(SESSIONS.c.id).where(
                SESSIONS.c.id.in_(sessions), SESSIONS.c.status == SessionStatus.QUARANTINED
            )
            quarantined = set(conn.execute(refused).scalars())
            gone = select(DELETIONS.c.session_id).where(DELETIONS.c.session_id.in_(sessions))
            deleted = set(conn.execute(gone).scalars())
    for offset, key in sorted(keys.items()):
        if key is not None and key in stored:
            report.stored += 1
        elif key is not None and key[0] in deleted:
            report.deleted += 1
        elif (report.partition, offset) in letters.messages:
            if key is not None and key[0] in quarantined:
                report.quarantined += 1
            else:
                report.dead_lettered += 1
        else:
            report.missing.append(offset)
