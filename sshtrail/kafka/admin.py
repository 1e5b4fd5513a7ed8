"""Topics and consumer groups as the cluster describes them (an ``AdminClient`` adapter).

Every call translates librdkafka's errors into :class:`~sshtrail.errors.BrokerError`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import (
    ConsumerGroupTopicPartitions,
    KafkaError,
    KafkaException,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient, NewTopic

from sshtrail.errors import BrokerError
from sshtrail.kafka.adapters import reason, translated
from sshtrail.kafka.config import QUIET, client_config
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


@dataclass(frozen=True, slots=True)
class TopicInfo:
    name: str
    partitions: int
    replicas: int  # the smallest replica count of its partitions


class KafkaAdmin:
    """The admin questions sshtrail asks a cluster."""

    def __init__(self, config: dict[str, Any], servers: str, timeout: float = 10.0) -> None:
        self._servers = servers
        self._timeout = timeout
        self._admin = AdminClient(config)

    def topic(self, name: str) -> TopicInfo:
        """Partitions and replicas of ``name``; :class:`BrokerError` if it does not exist."""
        with translated(f"cannot reach {self._servers}"):
            found = self._admin.list_topics(name, timeout=self._timeout).topics.get(name)
        if found is None or found.error is not None:
            raise BrokerError(f"topic {name} does not exist")
        replicas = min((len(p.replicas) for p in found.partitions.values()), default=0)
        return TopicInfo(name, len(found.partitions), replicas)

    def ensure_topics(
        self, names: list[str], partitions: int, replication: int, config: dict[str, str]
    ) -> list[str]:
        """Create the topics of ``names`` that are missing; returns those created.

        An existing topic is left as it is, even if its partition count differs
        (changing that reorders keys and is an operator's decision).
        """
        with translated(f"cannot reach {self._servers}"):
            existing = self._admin.list_topics(timeout=self._timeout).topics
        missing = [
            NewTopic(name, partitions, replication, config=dict(config))
            for name in names
            if name not in existing
        ]
        if not missing:
            return []
        created = []
        futures = self._admin.create_topics(missing, operation_timeout=self._timeout)
        for name, future in futures.items():
            try:
                future.result(self._timeout)
            except KafkaException as exc:
                if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:  # a racing creator
                    raise BrokerError(f"cannot create topic {name}: {reason(exc)}") from None
            else:
                created.append(name)
        return created

    def group(self, group: str, topic: str) -> GroupState:
        """The group's committed offsets and owners on ``topic``, and whether it exists."""
        with translated(f"cannot read group {group} from {self._servers}"):
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


def ensure_topics(settings: Settings, timeout: float = 30.0) -> list[str]:
    """Create the sessions topic, its dead-letter topic and the control topic if missing;
    the names created. The control topic is compacted: the last lock or unlock of each
    operator stays on it for good (sshtrail/control.py)."""
    kafka = settings.kafka
    admin = kafka_admin(settings, timeout)
    created = admin.ensure_topics(
        [kafka.topic, kafka.dlq_topic],
        kafka.partitions,
        kafka.replication_factor,
        dict(kafka.topic_config),
    )
    created += admin.ensure_topics(
        [settings.control.topic],
        kafka.partitions,
        kafka.replication_factor,
        {"cleanup.policy": "compact"},
    )
    return created
