"""A member's lag gauges: how many messages and seconds each owned partition is behind.

Set every ``lag_report_s`` by the runner, also while it waits on the
database or rests, from the partitions' log ends and what the member has
committed; seconds behind that cannot be told are NaN, not zero
(docs/architecture.md, guarantee 7).
"""

from __future__ import annotations

import time

from consumer.metrics import ConsumerMetrics
from consumer.positions import Positions


class LagGauges:
    """Refreshes one member's lag gauges at most every ``every_s`` unless forced."""

    def __init__(
        self, topic: str, positions: Positions, metrics: ConsumerMetrics, every_s: float
    ) -> None:
        self.topic = topic
        self._positions = positions
        self._consumer = positions.consumer
        self._metrics = metrics
        self._every_s = every_s
        self._next_report = 0.0

    def report(self, *, fresh: bool, force: bool = False) -> None:
        """Set the gauges of the partitions the member owns. ``fresh``: ask the broker
        for the log ends (paused, the client fetches nothing and its own go stale)."""
        now = time.monotonic()
        if not force and now < self._next_report:
            return
        self._next_report = now + self._every_s
        positions = self._positions
        unknown = [p for p in positions.assigned if p not in positions.committed]
        if unknown:  # away: the gauges say what is known
            positions.look_up_committed(unknown, timeout=2.0)
        messages: dict[int, int] = {}
        seconds: dict[int, float] = {}
        wall = time.time()
        for partition in sorted(positions.assigned):
            marks = self._consumer.watermarks(partition, fresh=fresh)
            if marks is None:
                continue
            low, high = marks
            committed = positions.committed.get(partition)
            behind = max(high - (committed if committed is not None else low), 0)
            messages[partition] = behind
            # Upper bound: the oldest unread message is newer than the last one read.
            last = positions.last_published.get(partition)
            if not behind:
                seconds[partition] = 0.0
            elif last is not None:
                seconds[partition] = max(wall - last, 0.0)
            else:
                seconds[partition] = float("nan")  # behind, and nothing read yet: unknown
        self._metrics.lag(self.topic, messages, seconds)
