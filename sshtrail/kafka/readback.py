"""Reading a topic back from a moment to the ends it had when the read began, bounded.

For readers that hold state built from a topic's recent past (the auditors' control
boards, the alert outbox's check of what a dead member published): each partition is
started at the first offset at or after a moment (:func:`assign_since`), and read to the
log ends taken when the read begins (:func:`read_to_ends`), so a topic written meanwhile
still ends. The read stops at a time and a message bound and says which stopped it; what
an unfinished read means (an error, or a partial answer said in the log) is the caller's
to decide. Positions are the caller's too, advanced in place, so a later read carries on
where this one stopped.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from sshtrail.kafka.ports import Message, TopicReader

#: The most messages asked of one consume: it waits for the whole batch or its timeout.
BATCH = 1000
#: How long one consume waits, so the bounds are checked this often.
POLL_S = 0.5


class Stop(enum.Enum):
    """What ended a read."""

    #: Every partition was read to the end it had when the read began.
    END = "end"
    #: The time bound passed first.
    TIME = "time"
    #: The message bound was reached first.
    COUNT = "count"


@dataclass(frozen=True)
class ReadBack:
    """How a read ended: what stopped it, and how many messages it handed on."""

    stop: Stop
    read: int


def assign_since(
    reader: TopicReader, topic: str, since_ms: int, known: Mapping[int, int] | None = None
) -> dict[int, int]:
    """Assign ``reader`` to every partition of ``topic``; the position in each.

    A partition starts where ``known`` says (a reader replacing one that was dropped
    carries on), else at its first offset at or after ``since_ms``, else at its end
    (nothing since); never below its earliest offset, since retention took what was
    before. Raises :class:`~sshtrail.errors.TopicMissing` if there is no such topic.
    """
    positions: dict[int, int] = {}
    for partition in reader.partitions(topic):
        low, high = reader.watermarks(topic, partition)
        start = (known or {}).get(partition)
        if start is None:
            start = reader.offset_at(topic, partition, since_ms)
        positions[partition] = max(high if start is None else start, low)
    reader.assign(topic, positions)
    return positions


def read_to_ends(
    reader: TopicReader,
    topic: str,
    positions: dict[int, int],
    take: Callable[[Message], None],
    *,
    within_s: float,
    max_messages: int,
) -> ReadBack:
    """Hand every message from ``positions`` to the log ends of now to ``take``, in the
    order of each partition, advancing ``positions``; stopped by ``within_s`` seconds or
    ``max_messages`` messages, whichever comes first (never more are read)."""
    ends = {partition: reader.watermarks(topic, partition)[1] for partition in positions}
    read = 0
    deadline = time.monotonic() + within_s
    while True:
        left = sum(max(end - positions[partition], 0) for partition, end in ends.items())
        if not left:
            return ReadBack(Stop.END, read)
        if read >= max_messages:
            return ReadBack(Stop.COUNT, read)
        if time.monotonic() > deadline:
            return ReadBack(Stop.TIME, read)
        # Never more than are left to the ends, nor than the bound allows: a consume
        # waits for as many as it asks for (or its timeout), and a read must not wait
        # once the ends are reached.
        for message in reader.consume(min(left, BATCH, max_messages - read), POLL_S):
            partition, offset = message.partition(), message.offset()
            if partition is not None and offset is not None:
                positions[partition] = offset + 1
            read += 1
            take(message)
