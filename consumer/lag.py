"""Consumer lag as the broker sees it: log-end offset minus committed offset, per partition.

The same numbers ``kafka-consumer-groups.sh --describe`` prints, from the
AdminClient: committed offsets of the group, log-end offsets of the topic,
and which member owns each partition. Time lag is the age of the oldest
message the group has not consumed -- read from the broker at the committed
offset, so it keeps growing while a group is stopped.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from sshtrail.errors import BrokerError
from sshtrail.kafka.adapters import topic_reader
from sshtrail.kafka.admin import kafka_admin
from sshtrail.settings import Settings


@dataclass(frozen=True, slots=True)
class PartitionLag:
    """One row of ``sshtrail lag``; its field names are the ``--json`` shape."""

    group: str
    topic: str
    partition: int
    current_offset: int | None  # committed; None if the group never committed here
    log_end_offset: int
    lag: int
    time_lag_s: float  # age of the oldest unconsumed message; 0 when caught up
    consumer_id: str | None
    host: str | None
    client_id: str | None


class LagReader:
    """Reads lag for groups over the sessions topic; reuse it for ``--watch``."""

    def __init__(self, settings: Settings, timeout: float = 10.0) -> None:
        self.topic = settings.kafka.topic
        self._timeout = timeout
        self._servers = settings.bootstrap_servers
        self._admin = kafka_admin(settings, timeout)
        # Reads the message at a committed offset, for its timestamp; joins no group.
        self._probe = topic_reader(settings, "lag", timeout)

    def close(self) -> None:
        self._probe.close()

    def read(self, group: str) -> list[PartitionLag]:
        try:
            partitions = self._probe.partitions(self.topic)
            state = self._admin.group(group, self.topic)
            marks = {p: self._probe.watermarks(self.topic, p) for p in partitions}
        except BrokerError as exc:
            raise BrokerError(
                f"cannot read the lag of {group} from {self._servers}: {exc.reason}"
            ) from None
        now = time.time()
        rows = []
        for partition in partitions:
            current = state.committed.get(partition)
            # A group with no commit here would begin at the earliest offset.
            low, end = marks[partition]
            lag = end - (current if current is not None else low)
            seconds = self._age(partition, end - lag, now) if lag > 0 else 0.0
            owner = state.owners.get(partition)
            rows.append(
                PartitionLag(
                    group,
                    self.topic,
                    partition,
                    current,
                    end,
                    max(lag, 0),
                    round(seconds, 3),
                    owner.member_id if owner else None,
                    owner.host if owner else None,
                    owner.client_id if owner else None,
                )
            )
        return rows

    def _age(self, partition: int, offset: int, now: float) -> float:
        """Seconds since the message at ``offset`` was published."""
        self._probe.assign(self.topic, {partition: offset})
        deadline = time.monotonic() + self._timeout
        while time.monotonic() < deadline:
            for message in self._probe.consume(1, 0.5):
                _kind, millis = message.timestamp()
                return max(now - millis / 1000, 0.0)
        return 0.0
