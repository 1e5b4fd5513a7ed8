"""Resting while caught up (``idle_check_s``): a member's partitions paused until a log end moves.

On a broker that answers an empty fetch at once instead of holding it (the
embedded one), a caught-up member would poll without pause. Resting, it asks
for its partitions' log ends every ``idle_check_s`` instead, and fetches again
when one has moved past what it has read (docs/decisions.md, "Idle members").
"""

from __future__ import annotations

import time

from consumer.positions import Positions


class Rest:
    """Whether a member rests, and the checks that start and end it."""

    def __init__(self, positions: Positions, idle_check_s: float) -> None:
        self._positions = positions
        self._consumer = positions.consumer
        self._idle_check_s = idle_check_s
        self._next_check = 0.0
        #: Caught up and paused until a log end moves.
        self.resting = False

    def after_empty_poll(self, *, caught_up: bool, paused: bool) -> None:
        """After a poll that brought nothing: rest if caught up; resting, wake when a
        log end moved past what this member has read. Not while ``paused`` (retrying)."""
        if not self._idle_check_s or paused:
            return
        now = time.monotonic()
        if now < self._next_check:
            return
        self._next_check = now + self._idle_check_s
        if not self.resting:
            # An empty poll is not proof: librdkafka may still be looking up where a
            # new partition starts. Rest only where the log ends say nothing waits.
            if caught_up and self._positions.assigned and not self._positions.news():
                self._consumer.pause(self._consumer.assignment())
                self.resting = True
        elif self._positions.news():
            self.wake(paused=paused)

    def wake(self, *, paused: bool) -> None:
        """Stop resting; the partitions are resumed unless ``paused`` for a retry."""
        if self.resting:
            self.resting = False
            if not paused:
                self._consumer.resume(self._consumer.assignment())

    def resumed(self) -> None:
        """The whole assignment was resumed (a retry succeeded): resting is over too."""
        self.resting = False
