"""Offsets Kafka's retention took before a group read them, accounted for from the store.

When a group's committed offset is below a partition's log start, the messages
between are gone from Kafka. That is no loss when what they carried is in the
store anyway -- another group stored it, the store group wrote it and fell
before committing -- or was deleted on purpose and left a tombstone. So, for a
span ``[first, end)`` of a partition (:func:`account`):

* **stored** -- offsets a stored chunk was read from (``chunks.partition`` and
  ``offset``): matched offset by offset;
* **deleted** -- a deleted session leaves no chunk, and its tombstone keeps no
  offsets, only its chunk count: the offsets left are taken as its chunks up to
  the chunk counts of the tombstones of sessions that land on this partition (the
  partition of their key) and began before the first message still there was
  published. Counted, not matched: a tombstone can only make the span fine if
  there are enough deleted chunks on this partition to fill what is left;
* **lost** -- the rest: recordings Kafka deleted that the store never had.

``sshtrail lag`` and ``sshtrail completeness`` say "expired, stored" when
nothing is lost, and "expired, lost" (DATA-LOSS) otherwise.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import Engine, func, or_, select

from sshtrail.kafka.config import partition_for
from sshtrail.tables import CHUNKS, DELETIONS

#: Tombstones read per query.
PAGE = 5000


@dataclass(frozen=True, slots=True)
class Expired:
    """What the store says of the offsets ``[first, end)`` Kafka no longer has."""

    partition: int
    span: tuple[int, int]
    stored: int
    deleted: int

    @property
    def lost(self) -> int:
        first, end = self.span
        return end - first - self.stored - self.deleted

    def describe(self) -> str:
        first, end = self.span
        where = f"offsets {first}-{end - 1} expired from Kafka"
        if self.lost:
            return (
                f"{where}, lost: {self.lost} of {end - first} neither stored nor "
                f"deleted with a tombstone ({self.stored} stored, {self.deleted} deleted)"
            )
        return f"{where}, stored: {self.stored} stored, {self.deleted} of deleted sessions"


def account(
    store: Engine,
    partition: int,
    span: tuple[int, int],
    partitions: int,
    first_kept_at: dt.datetime | None,
) -> Expired:
    """The offsets ``[first, end)`` of ``partition`` (of a topic of ``partitions``),
    accounted for from the store; ``first_kept_at``: when the first message Kafka
    still has was published (None: no message is left, or it could not be read)."""
    first, end = span
    with store.connect() as conn:
        stored = conn.execute(
            select(func.count()).where(
                CHUNKS.c.partition == partition, CHUNKS.c.offset.between(first, end - 1)
            )
        ).scalar_one()
        left = end - first - stored
        deleted = 0
        after = None
        while deleted < left:
            query = select(DELETIONS.c.session_id, DELETIONS.c.chunk_count)
            if first_kept_at is not None:
                began = DELETIONS.c.started_at <= first_kept_at
                query = query.where(or_(began, DELETIONS.c.started_at.is_(None)))
            if after is not None:
                query = query.where(DELETIONS.c.session_id > after)
            page = conn.execute(query.order_by(DELETIONS.c.session_id).limit(PAGE)).all()
            for session_id, chunks in page:
                if partition_for(str(session_id).encode(), partitions) == partition:
                    deleted += chunks
            if len(page) < PAGE:
                break
            after = page[-1].session_id
    return Expired(partition, span, stored, min(deleted, left))
