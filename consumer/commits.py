"""Committing a member's offsets, and committing again what the broker refused in a rebalance.

A commit is synchronous, per partition, one past what was written. The broker
refuses commits while a rebalance is in progress; a cooperative rebalance
leaves most partitions where they are, so no new owner re-reads and commits
them: the member commits them again itself, while it still holds them (the
same epoch). A fenced client's refusal is fatal and propagates.
"""

from __future__ import annotations

import logging
import time

from consumer.metrics import ConsumerMetrics
from consumer.positions import Positions
from sshtrail.errors import CommitFailed

log = logging.getLogger(__name__)


class Commits:
    """One member's commits, and the refused ones it owes."""

    def __init__(
        self,
        group: str,
        positions: Positions,
        metrics: ConsumerMetrics,
        *,
        retry_initial_s: float,
        retry_max_s: float,
    ) -> None:
        self.group = group
        self._positions = positions
        self._consumer = positions.consumer
        self._metrics = metrics
        self._retry_initial_s = retry_initial_s
        self._retry_max_s = retry_max_s
        #: Commits the broker refused, per partition: the offset and the epoch it was
        #: written in.
        self._refused: dict[int, tuple[int, int]] = {}
        self._again_at = 0.0

    def commit(self, ends: dict[int, int]) -> None:
        """Commit ``ends`` (the next offset per partition); refused, remember them."""
        if not ends:
            return
        try:
            self._consumer.commit(ends)
        except CommitFailed as exc:
            if exc.fatal:  # fenced: this client will never commit again
                raise
            # Typically a rebalance in progress. A partition that moves is re-read by
            # its next owner (the idempotent writer ignores what is stored); one that
            # stays is committed again here once the rebalance is over.
            self._metrics.commit_failed()
            for partition, offset in ends.items():
                self._refused[partition] = (offset, self._positions.epochs.get(partition, 0))
            self._again_at = time.monotonic() + self._retry_initial_s
            log.warning("%s: %s; committing again while the partitions stay", self.group, exc)
            return
        for partition in ends:
            self._refused.pop(partition, None)
        self._positions.committed.update(ends)

    def commit_again(self) -> None:
        """Commit what the broker refused, for the partitions still held since."""
        if not self._refused or time.monotonic() < self._again_at:
            return
        positions = self._positions
        held = {
            partition: offset
            for partition, (offset, epoch) in self._refused.items()
            if partition in positions.assigned and positions.epochs.get(partition, 0) == epoch
        }
        self._refused = {p: self._refused[p] for p in held}
        if not held:
            return
        try:
            self._consumer.commit(held)
        except CommitFailed as exc:
            if exc.fatal:
                raise
            self._again_at = time.monotonic() + self._retry_max_s
            log.info("%s: committing again refused too (%s); will retry", self.group, exc)
            return
        self._refused.clear()
        positions.committed.update(held)
        log.info("%s: committed partitions %s after the rebalance", self.group, sorted(held))
