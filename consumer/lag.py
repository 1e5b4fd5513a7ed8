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

from confluent_kafka import ConsumerGroupTopicPartitions, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient

from sshtrail.errors import BrokerError
from sshtrail.kafka import QUIET, client_config, reason, standalone_consumer, topic_metadata
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
        self._admin = AdminClient(client_config(settings, **QUIET))
        # Reads the message at a committed offset, for its timestamp; joins no group.
        self._probe = standalone_consumer(settings, "lag")

    def close(self) -> None:
        self._probe.close()

    def read(self, group: str) -> list[PartitionLag]:
        try:
            partitions = self._partitions()
            committed = self._committed(group)
            marks = self._watermarks(partitions)
            owners = self._owners(group)
        except KafkaException as exc:
            raise BrokerError(
                f"cannot read the lag of {group} from {self._servers}: {reason(exc)}"
            ) from None
        now = time.time()
        rows = []
        for partition in partitions:
            current = committed.get(partition)
            # A group with no commit here would begin at the earliest offset.
            low, end = marks[partition]
            lag = end - (current if current is not None else low)
            seconds = self._age(partition, end - lag, now) if lag > 0 else 0.0
            owner = owners.get(partition, (None, None, None))
            rows.append(
                PartitionLag(
                    group,
                    self.topic,
                    partition,
                    current,
                    end,
                    max(lag, 0),
                    round(seconds, 3),
                    *owner,
                )
            )
        return rows

    def _partitions(self) -> list[int]:
        return sorted(topic_metadata(self._admin, self.topic, self._timeout).partitions)

    def _committed(self, group: str) -> dict[int, int]:
        request = [ConsumerGroupTopicPartitions(group)]
        listed = self._admin.list_consumer_group_offsets(request)[group].result(self._timeout)
        return {
            tp.partition: tp.offset
            for tp in listed.topic_partitions
            if tp.topic == self.topic and tp.offset >= 0
        }

    def _watermarks(self, partitions: list[int]) -> dict[int, tuple[int, int]]:
        """(earliest, log-end) offset of each partition, from the broker."""
        marks = {}
        for partition in partitions:
            low, high = self._probe.get_watermark_offsets(
                TopicPartition(self.topic, partition), timeout=self._timeout
            )
            marks[partition] = (int(low), int(high))
        return marks

    def _owners(self, group: str) -> dict[int, tuple[str, str, str]]:
        described = self._admin.describe_consumer_groups([group])[group].result(self._timeout)
        owners = {}
        for member in described.members:
            for tp in member.assignment.topic_partitions if member.assignment else []:
                if tp.topic == self.topic:
                    owners[tp.partition] = (member.member_id, member.host, member.client_id)
        return owners

    def _age(self, partition: int, offset: int, now: float) -> float:
        """Seconds since the message at ``offset`` was published."""
        self._probe.assign([TopicPartition(self.topic, partition, offset)])
        deadline = time.monotonic() + self._timeout
        try:
            while time.monotonic() < deadline:
                message = self._probe.poll(0.5)
                if message is not None and message.error() is None:
                    _kind, millis = message.timestamp()
                    return max(now - millis / 1000, 0.0)
        finally:
            self._probe.unassign()
        return 0.0
