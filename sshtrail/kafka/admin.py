"""Topics and consumer groups as the cluster describes them (an ``AdminClient`` adapter).

Every call translates librdkafka's errors into :class:`~sshtrail.errors.BrokerError`.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import (
    ConsumerGroupTopicPartitions,
    KafkaError,
    KafkaException,
    TopicPartition,
)
from confluent_kafka.admin import (
    AdminClient,
    ConfigResource,
    NewTopic,
    OffsetSpec,
    ResourceType,
)

from sshtrail.errors import BrokerError
from sshtrail.kafka import layout
from sshtrail.kafka.adapters import reason, translated
from sshtrail.kafka.config import QUIET, client_config
from sshtrail.kafka.layout import Difference, FoundTopic, TopicSpec
from sshtrail.settings import Settings


@dataclass(frozen=True, slots=True)
class Member:
    """A member of a consumer group, as ``kafka-consumer-groups.sh`` names it."""

    member_id: str
    host: str
    client_id: str


@dataclass(frozen=True, slots=True)
class GroupState:
    """What the coordinator says of a group on one topic."""

    #: False when the coordinator knows no such group (never joined, never committed).
    exists: bool
    #: ``stable``, ``empty``, ``preparingrebalance``, ``dead`` ... (lower case).
    state: str
    #: Committed offset per partition of the topic (only where there is one).
    committed: dict[int, int] = field(default_factory=dict)
    #: The member that owns each partition now.
    owners: dict[int, Member] = field(default_factory=dict)


class KafkaAdmin:
    """The admin questions sshtrail asks a cluster."""

    def __init__(self, config: dict[str, Any], servers: str, timeout: float = 10.0) -> None:
        self.servers = servers
        self._timeout = timeout
        self._admin = AdminClient(config)

    def brokers(self) -> int:
        """How many brokers answer for the cluster now."""
        with translated(f"cannot reach {self.servers}"):
            return len(self._admin.list_topics(timeout=self._timeout).brokers)

    def existing(self, names: Iterable[str]) -> set[str]:
        """Those of ``names`` the cluster has."""
        with translated(f"cannot reach {self.servers}"):
            topics = self._admin.list_topics(timeout=self._timeout).topics
        return {name for name in names if name in topics}

    def create(self, specs: Sequence[TopicSpec]) -> list[str]:
        """Create the topics of ``specs``; returns those created (not those another
        client created first)."""
        if not specs:
            return []
        created = []
        new = [NewTopic(s.name, s.partitions, s.replication, config=dict(s.config)) for s in specs]
        futures = self._admin.create_topics(new, operation_timeout=self._timeout)
        for name, future in futures.items():
            try:
                future.result(self._timeout)
            except KafkaException as exc:
                if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:  # a racing creator
                    raise BrokerError(f"cannot create topic {name}: {reason(exc)}") from None
            else:
                created.append(name)
        return created

    def describe(self, name: str, wait: float = 0.0) -> FoundTopic:
        """Partitions, replicas, effective configs and message count of ``name``.

        :class:`BrokerError` if it does not exist; a topic created a moment ago may
        not be known to every broker yet: ``wait`` is how long to keep asking.
        """
        deadline = time.monotonic() + wait
        while True:
            try:
                return self._describe(name)
            except BrokerError:
                if time.monotonic() >= deadline:
                    raise
                time.sleep(0.2)

    def _describe(self, name: str) -> FoundTopic:
        with translated(f"cannot describe topic {name} on {self.servers}"):
            found = self._admin.list_topics(name, timeout=self._timeout).topics.get(name)
            if found is None or found.error is not None:
                raise BrokerError(f"topic {name} does not exist on {self.servers}")
            resource = ConfigResource(ResourceType.TOPIC, name)
            [future] = self._admin.describe_configs([resource]).values()
            entries = future.result(self._timeout)
            partitions = [TopicPartition(name, p) for p in found.partitions]
            # confluent-kafka leaves these two factories without annotations.
            ends = self._offsets(partitions, OffsetSpec.latest())  # type: ignore[no-untyped-call]
            starts = self._offsets(partitions, OffsetSpec.earliest())  # type: ignore[no-untyped-call]
        config = {key: entry.value for key, entry in entries.items() if entry.value is not None}
        replicas = min((len(p.replicas) for p in found.partitions.values()), default=0)
        messages = sum(max(end - starts.get(p, 0), 0) for p, end in ends.items())
        return FoundTopic(name, len(found.partitions), replicas, config, messages)

    def _offsets(self, partitions: list[TopicPartition], spec: OffsetSpec) -> dict[int, int]:
        if not partitions:
            return {}
        futures = self._admin.list_offsets(dict.fromkeys(partitions, spec))
        return {tp.partition: future.result(self._timeout).offset for tp, future in futures.items()}

    def group(self, group: str, topic: str) -> GroupState:
        """The group's committed offsets and owners on ``topic``, and whether it exists."""
        with translated(f"cannot read group {group} from {self.servers}"):
            request = [ConsumerGroupTopicPartitions(group)]
            listed = self._admin.list_consumer_group_offsets(request)[group].result(self._timeout)
            described = self._admin.describe_consumer_groups([group])[group].result(self._timeout)
        committed = {
            tp.partition: tp.offset
            for tp in listed.topic_partitions or []
            if tp.topic == topic and tp.offset >= 0
        }
        owners: dict[int, Member] = {}
        for member in described.members or []:
            for tp in member.assignment.topic_partitions if member.assignment else []:
                if tp.topic == topic:
                    owners[tp.partition] = Member(member.member_id, member.host, member.client_id)
        state = str(getattr(described.state, "name", described.state)).lower()
        # A group the coordinator never saw is reported "dead" with no members and
        # no offsets; a group whose members all left keeps its offsets ("empty").
        exists = bool(committed or owners or described.members) or state not in ("dead", "unknown")
        return GroupState(exists, state, committed, owners)

    def delete_records(self, topic: str, before: dict[int, int]) -> None:
        """Delete the messages below ``before[partition]`` (what retention does)."""
        with translated(f"cannot delete records of {topic}"):
            request = [TopicPartition(topic, p, o) for p, o in before.items()]
            for future in self._admin.delete_records(request).values():
                future.result(self._timeout)


def kafka_admin(settings: Settings, timeout: float = 10.0) -> KafkaAdmin:
    """An admin client for ``settings``; quiet, since its failures are raised."""
    return KafkaAdmin(client_config(settings, **QUIET), settings.bootstrap_servers, timeout)


@dataclass(frozen=True, slots=True)
class Topics:
    """The three topics as found, those created now, and how the others differ."""

    found: list[FoundTopic]
    created: list[str]
    differences: list[Difference]

    @property
    def refusals(self) -> list[Difference]:
        return [d for d in self.differences if d.refuses]

    @property
    def warnings(self) -> list[Difference]:
        return [d for d in self.differences if not d.refuses]


def ensure_topics(settings: Settings, timeout: float = 30.0) -> list[str]:
    """Create the sessions topic, its dead-letter topic and the control topic where
    missing, as :func:`~sshtrail.kafka.layout.recommended` says; the names created.
    An existing topic is left as it is."""
    return settle_topics(settings, timeout).created


def settle_topics(settings: Settings, timeout: float = 30.0) -> Topics:
    """Create the missing topics, then describe all three and compare the others with
    the recommended ones. Differences are returned, not raised: the caller decides."""
    admin = kafka_admin(settings, timeout)
    brokers = admin.brokers()
    specs = layout.recommended(settings, brokers)
    existing = admin.existing(spec.name for spec in specs)
    missing = [spec for spec in specs if spec.name not in existing]
    if missing and missing[0].replication > brokers:
        raise BrokerError(
            f"cannot create {', '.join(s.name for s in missing)} with replication factor "
            f"{missing[0].replication} (kafka.replication_factor): {admin.servers} has "
            f"{layout.counted(brokers, 'broker')}, and a partition cannot have "
            "more replicas than there are brokers"
        )
    created = admin.create(missing)
    found, differences = [], []
    for spec in specs:
        # A topic just made (here or by a racing client) may not be known to every
        # broker yet; one made by another client is checked like any existing one.
        topic = admin.describe(spec.name, wait=0.0 if spec.name in existing else timeout)
        found.append(topic)
        if spec.name not in created:
            differences += layout.differences(spec, topic)
    return Topics(found, created, differences)
