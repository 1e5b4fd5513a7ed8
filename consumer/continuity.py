"""Offset continuity: finding the offsets the broker deleted before the group read them.

The sessions topic is neither compacted nor written in transactions, so its
offsets have no holes: a message further on than the one expected means the
broker deleted what lay between (retention ran while the group was behind,
and the client jumped to the first offset left). Such offsets are DATA-LOSS:
logged here, and handed back as :class:`~sshtrail.errors.OffsetsLost` for the
runner to count and record in the dead-letter topic before anything past them
is committed. With nothing new in a partition no message shows the hole, so
while idle the partitions' first offsets are compared too.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Sequence

from consumer.messages import Batch
from consumer.positions import Positions
from sshtrail.errors import BrokerError, CommitFailed, OffsetsLost

log = logging.getLogger(__name__)


def lost_messages(losses: Sequence[OffsetsLost]) -> int:
    """How many messages ``losses`` span together."""
    return sum(end - first for _, first, end in (gone.span for gone in losses))


class Continuity:
    """Checks one member's partitions for offsets that were never read."""

    def __init__(self, group: str, positions: Positions, check_every_s: float) -> None:
        self.group = group
        self._positions = positions
        self._consumer = positions.consumer
        self._check_every_s = check_every_s
        self._next_check = 0.0

    def check_soon(self) -> None:
        """Compare with the log starts at the next idle moment (where new partitions stand)."""
        self._next_check = 0.0

    def skipped(self, batch: Batch) -> list[OffsetsLost]:
        """Offsets missing before or between the batch's messages, per partition.

        A message below the one expected was fetched before a jump past a hole
        was recorded (:meth:`check_log_starts`): it is accounted for, and
        dropped from the batch.
        """
        offsets: dict[int, list[int]] = {}
        for partition, offset in (
            [(m.partition, m.offset) for m in batch.good]
            + [(m.partition, m.offset) for m in batch.bad]
            + [(r.received.partition, r.received.offset) for r in batch.refused]
        ):
            offsets.setdefault(partition, []).append(offset)
        found = []
        for partition, seen in sorted(offsets.items()):
            expected = self._positions.expected(partition)
            if expected is not None and min(seen) < expected:
                batch.drop_before(partition, expected)
            for offset in sorted(seen):
                if expected is not None and offset < expected:
                    continue
                if expected is not None and offset > expected:
                    found.append(self._lost(partition, expected, offset))
                expected = offset + 1
        return found

    def check_log_starts(self) -> list[OffsetsLost]:
        """While idle, at most every ``check_every_s``: owned partitions whose next
        offset the broker has deleted (the lag would count those messages for ever).

        A partition never committed and with nothing to read has its position
        committed anyway, so that messages retention deletes before this group
        reads them are found missing, not mistaken for a topic older than the group.
        """
        now = time.monotonic()
        if now < self._next_check:
            return []
        self._next_check = now + self._check_every_s
        found: list[OffsetsLost] = []
        empty: dict[int, int] = {}
        for partition in sorted(self._positions.assigned):
            expected = self._positions.expected(partition)
            marks = self._consumer.watermarks(partition, fresh=True)
            if marks is None:
                continue
            low, high = marks
            if expected is None and low == high:
                empty[partition] = high
            elif expected is not None and expected < low:
                found.append(self._lost(partition, expected, low))
        if empty:
            with contextlib.suppress(CommitFailed):  # tried again at the next check
                self._consumer.commit(empty)
                self._positions.committed.update(empty)
        return found

    def pass_over(self, found: Sequence[OffsetsLost]) -> None:
        """Move past losses :meth:`check_log_starts` found, once they are recorded:
        fetch from the first offset left, and commit it."""
        ends = {partition: end for partition, _, end in (gone.span for gone in found)}
        for partition, end in ends.items():
            with contextlib.suppress(BrokerError):  # not fetching yet: it starts there anyway
                self._consumer.seek(partition, end)
        self._positions.next.update(ends)
        try:
            self._consumer.commit(ends)
        except CommitFailed as exc:
            log.warning("%s: %s; the loss is recorded all the same", self.group, exc)
            return
        self._positions.committed.update(ends)

    def _lost(self, partition: int, first: int, end: int) -> OffsetsLost:
        log.error(
            "%s: DATA-LOSS: partition %d offsets %d..%d were deleted by the broker before this "
            "group read them (retention ran while it was behind). Those recordings are not "
            "in this group's database; the loss is recorded in the dead-letter topic for "
            "'sshtrail completeness' (docs/operations.md, 'DATA-LOSS').",
            self.group,
            partition,
            first,
            end - 1,
        )
        return OffsetsLost(partition, first, end)
