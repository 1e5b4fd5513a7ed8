"""Where a group member stands in each partition it owns: the bookkeeping its runner's steps share.

:class:`~consumer.runner.GroupRunner` keeps one :class:`Positions` and hands
it to the steps that read or move it -- the offset-continuity check
(:mod:`consumer.continuity`), committing (:mod:`consumer.commits`), resting
(:mod:`consumer.resting`) and the lag gauges (:mod:`consumer.laggauges`).
All of them run on the runner's thread only, so nothing here is locked.
"""

from __future__ import annotations

import contextlib
from collections.abc import Collection
from dataclasses import dataclass, field

from sshtrail.errors import BrokerError
from sshtrail.kafka.ports import GroupConsumer


@dataclass
class Positions:
    """The partitions a member owns and, per partition, how far it has read and committed."""

    consumer: GroupConsumer
    assigned: set[int] = field(default_factory=set)
    #: Bumped when a partition is revoked: what was fetched before is stale.
    epochs: dict[int, int] = field(default_factory=dict)
    #: The committed offset per partition, as far as this member knows; None: never committed.
    committed: dict[int, int | None] = field(default_factory=dict)
    #: Per partition, the offset the next message should have: one past the last
    #: handled. Unknown after an assignment (then: the committed offset).
    next: dict[int, int] = field(default_factory=dict)
    #: Per partition, when the last message read was published (epoch seconds).
    last_published: dict[int, float] = field(default_factory=dict)

    def assign(self, partitions: list[int]) -> None:
        self.assigned.update(partitions)
        for partition in partitions:
            self.next.pop(partition, None)

    def revoke(self, partitions: list[int]) -> None:
        for partition in partitions:
            self.epochs[partition] = self.epochs.get(partition, 0) + 1
            self.committed.pop(partition, None)
            self.next.pop(partition, None)
            self.last_published.pop(partition, None)
        self.assigned.difference_update(partitions)

    def position(self, partition: int) -> int | None:
        """The offset this member reads next in the partition, as known without asking."""
        return self.next.get(partition, self.committed.get(partition))

    def look_up_committed(self, partitions: Collection[int], timeout: float) -> None:
        """Ask the broker what is committed for ``partitions``; away, nothing is learned."""
        with contextlib.suppress(BrokerError):
            self.committed.update(self.consumer.committed(partitions, timeout=timeout))

    def expected(self, partition: int) -> int | None:
        """The offset the partition's next message should have; None if not known."""
        if partition in self.next:
            return self.next[partition]
        if self.committed.get(partition) is None:
            self.look_up_committed([partition], timeout=5.0)  # away: this batch goes unchecked
        # Never committed (a new group): it starts where the topic starts, losing nothing.
        return self.committed.get(partition)

    def settled(self) -> frozenset[int]:
        """Owned partitions written up to their log end, as the broker says now: a
        session on one of them that went silent is silent in Kafka too, not only
        unread here (the store marks such sessions interrupted)."""
        settled = set()
        for partition in sorted(self.assigned):
            marks = self.consumer.watermarks(partition, fresh=True)
            if marks is None:
                continue
            low, high = marks
            position = self.position(partition)
            if (position is None and low == high) or (position is not None and position >= high):
                settled.add(partition)
        return frozenset(settled)

    def news(self) -> bool:
        """Whether an owned partition has messages past this member's position; also
        when that cannot be told (the broker is away: fetching will say so)."""
        for partition in sorted(self.assigned):
            marks = self.consumer.watermarks(partition, fresh=True)
            position = self.position(partition)
            if marks is None or position is None or marks[1] > position:
                return True
        return False
