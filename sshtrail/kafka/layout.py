"""The topics sshtrail needs, as it creates them, and how topics found on a cluster differ.

Pure logic, no client: :mod:`sshtrail.kafka.admin` describes the cluster into
:class:`FoundTopic` values and creates what :func:`recommended` says. Every
difference is a :class:`Difference` saying what was found, what is
recommended and what it costs; those that break something sshtrail promises
``refuse``, and ``up`` and ``topics`` then stop, naming each
(docs/operations.md, "Kafka"). sshtrail never changes an existing topic.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final, Literal

from sshtrail.errors import SshtrailError
from sshtrail.settings import Settings

#: How long the sessions and dead-letter topics keep messages unless
#: ``kafka.topic_config`` says otherwise: how far back ``reprocess`` rebuilds a
#: store, and how long a group may be down before it loses sessions.
RETENTION_MS: Final = 30 * 24 * 3600 * 1000
#: Replicas of each partition unless ``kafka.replication_factor`` says otherwise
#: (fewer on a cluster of fewer brokers).
REPLICAS: Final = 3

Role = Literal["sessions", "dead letters", "requests", "access-log heads", "alerts"]


@dataclass(frozen=True, slots=True)
class TopicSpec:
    """A topic as sshtrail creates it, and as it recommends an existing one to be."""

    name: str
    role: Role
    partitions: int
    replication: int
    #: Topic configs set at creation (``min.insync.replicas``, ``cleanup.policy`` ...).
    config: dict[str, str]
    #: Where ``replication`` came from, for messages ("the cluster has 3 brokers").
    replication_source: str = ""
    #: Whether ``min.insync.replicas`` is the user's (``kafka.topic_config``); if not,
    #: an existing topic is held to :func:`min_insync_for` its own replica count.
    insync_configured: bool = False


@dataclass(frozen=True, slots=True)
class FoundTopic:
    """A topic as the cluster describes it."""

    name: str
    partitions: int
    #: The smallest replica count of its partitions.
    replicas: int
    #: Its effective configs (the broker's default where the topic sets none).
    config: dict[str, str] = field(default_factory=dict)
    #: Messages it holds now (log end minus earliest offset, summed over partitions).
    messages: int = 0


@dataclass(frozen=True, slots=True)
class Difference:
    """One way a found topic differs from the recommended one."""

    topic: str
    what: str
    found: str
    recommended: str
    #: What the difference costs, in a sentence.
    consequence: str
    #: True when it breaks a promise: the topics are not used as they are.
    refuses: bool = False

    def __str__(self) -> str:
        return f"{self.topic}: {self.what} {self.found}, {self.recommended}: {self.consequence}"


class TopicsRefused(SshtrailError):
    """Existing topics differ from the recommended ones in ways that break a promise."""

    def __init__(self, differences: Sequence[Difference], servers: str, outcome: str) -> None:
        self.differences = list(differences)
        lines = "".join(f"\n  {difference}" for difference in self.differences)
        super().__init__(
            f"the topics on {servers} cannot be used as they are; {outcome}:{lines}\n"
            "fix them as docs/operations.md (Kafka) says; sshtrail never changes a topic"
        )


def replicas_for(settings: Settings, brokers: int) -> tuple[int, str]:
    """The replication factor sshtrail creates topics with, and where it comes from."""
    if settings.kafka.replication_factor:
        return settings.kafka.replication_factor, "kafka.replication_factor"
    chosen = max(1, min(REPLICAS, brokers))
    return chosen, f"the cluster has {counted(brokers, 'broker')}"


def min_insync_for(replicas: int) -> int:
    """Every replica but one must have a write before it is acknowledged (at least one)."""
    return max(1, replicas - 1)


def recommended(settings: Settings, brokers: int) -> list[TopicSpec]:
    """The sessions, dead-letter, control and access-log heads topics as sshtrail creates them
    (and the alerts topic when the alert group has rules)."""
    kafka = settings.kafka
    replicas, source = replicas_for(settings, brokers)
    base = {
        "min.insync.replicas": str(min_insync_for(replicas)),
        "retention.ms": str(RETENTION_MS),
        "retention.bytes": "-1",
        "cleanup.policy": "delete",
    }
    data = {**base, **kafka.topic_config}
    configured = "min.insync.replicas" in kafka.topic_config
    # The control topic keeps the last lock or unlock of each operator for good
    # (sshtrail/control.py): compacted, whatever topic_config says of the others.
    control = {
        "min.insync.replicas": data["min.insync.replicas"],
        "cleanup.policy": "compact",
    }
    topics: list[tuple[str, Role, dict[str, str]]] = [
        (kafka.topic, "sessions", data),
        (kafka.dlq_topic, "dead letters", data),
        (settings.control.topic, "requests", control),
        # The last head of every chain of the access log stays for good (compacted).
        (settings.web.access_log_topic, "access-log heads", control),
    ]
    if settings.alerts.rules:  # the alert group runs: its alerts are kept as sessions are
        topics.append((settings.alerts.topic, "alerts", data))
    return [
        TopicSpec(name, role, kafka.partitions, replicas, config, source, configured)
        for name, role, config in topics
    ]


def differences(spec: TopicSpec, found: FoundTopic) -> list[Difference]:
    """How ``found`` differs from ``spec``, the differences that refuse first."""
    found_config = found.config
    checks = [
        *_partitions(spec, found),
        *_replication(spec, found),
        *_cleanup(spec, found_config.get("cleanup.policy")),
        *_retention(spec, found_config),
        *_others(spec, found_config),
    ]
    return sorted(checks, key=lambda difference: not difference.refuses)


def _partitions(spec: TopicSpec, found: FoundTopic) -> list[Difference]:
    if found.partitions == spec.partitions:
        return []

    def difference(consequence: str, refuses: bool = False) -> Difference:
        return Difference(
            spec.name,
            "partitions",
            str(found.partitions),
            f"kafka.partitions is {spec.partitions}",
            consequence,
            refuses,
        )

    if spec.role == "dead letters":
        return [difference("dead letters keep no order")]
    if spec.role == "access-log heads":
        return []  # access-log --verify reads every partition's heads, in any order
    if not found.messages:
        return [
            difference(
                f"it holds no messages; to have {spec.partitions}, delete it and sshtrail "
                f"creates it again, or set kafka.partitions = {found.partitions}"
            )
        ]
    split = (
        "a session open during a change is split across two partitions, and watch and "
        "the live view look for older sessions on the wrong one"
        if spec.role == "sessions"
        else "a lock and its unlock on two partitions may be applied in the wrong order"
    )
    held = counted(found.messages, "message")
    return [
        difference(
            f"it holds {held}, and sshtrail cannot tell whether its partition count "
            f"changed while it held messages ({split}); if it is meant to have "
            f"{found.partitions}, set kafka.partitions = {found.partitions}",
            refuses=True,
        )
    ]


def _replication(spec: TopicSpec, found: FoundTopic) -> list[Difference]:
    result = []
    if found.replicas < spec.replication:
        lost = (
            "a partition is unavailable while its one broker is down, and lost with its disk"
            if found.replicas == 1
            else f"it survives {found.replicas - 1} broker(s) down instead of "
            f"{spec.replication - 1}"
        )
        result.append(
            Difference(
                spec.name,
                "replication factor",
                str(found.replicas),
                f"recommended {spec.replication} ({spec.replication_source})",
                lost,
            )
        )
    text = found.config.get("min.insync.replicas")
    insync = _number(text)
    if text is None or insync is None:
        return result
    configured = _number(spec.config.get("min.insync.replicas"))
    if spec.insync_configured and configured is not None:
        wanted, where = configured, "(kafka.topic_config)"
    else:
        wanted = min_insync_for(found.replicas)
        where = f"for {counted(found.replicas, 'replica')}"
    if insync > found.replicas:
        result.append(
            Difference(
                spec.name,
                "min.insync.replicas",
                text,
                f"at most its replication factor {found.replicas}",
                "the brokers refuse every write sshtrail makes (acks=all)",
                refuses=True,
            )
        )
    elif insync < wanted:
        result.append(
            Difference(
                spec.name,
                "min.insync.replicas",
                text,
                f"recommended {wanted} {where}",
                f"a write is acknowledged once {counted(insync, 'replica')} "
                f"{'holds' if insync == 1 else 'hold'} it, and lost if "
                f"{'that broker fails' if insync == 1 else 'those brokers fail'} before the "
                "others copy it",
            )
        )
    elif insync > wanted:
        result.append(
            Difference(
                spec.name,
                "min.insync.replicas",
                text,
                f"recommended {wanted} {where}",
                f"with {found.replicas - insync + 1} of its {found.replicas} replicas down the "
                "brokers refuse writes (the gateway spools until they accept)",
            )
        )
    return result


def _cleanup(spec: TopicSpec, found: str | None) -> list[Difference]:
    wanted = spec.config.get("cleanup.policy", "delete")
    if found is None or sorted(found.replace(" ", "").split(",")) == [wanted]:
        return []
    consequence = {
        "sessions": "compaction keeps only the last chunk of each session and leaves holes in "
        "the offsets, which the groups report as DATA-LOSS; reprocess could not rebuild a store",
        "dead letters": "compaction keeps one dead letter per session, and drops the records "
        "of lost offsets that completeness reports",
        "requests": "deletion by retention would drop operator locks: a gateway started after "
        "that lets a locked operator in",
        "access-log heads": "deletion by retention would drop the heads of the access log's "
        "chains: rows deleted from the end of an old chain would go unseen",
    }[spec.role]
    return [Difference(spec.name, "cleanup.policy", found, f"must be {wanted}", consequence, True)]


def _retention(spec: TopicSpec, found: dict[str, str]) -> list[Difference]:
    if spec.role in ("requests", "access-log heads"):
        return []  # compacted: retention does not apply
    result = []
    wanted_ms = _number(spec.config.get("retention.ms"))
    found_ms = _number(found.get("retention.ms"))
    if wanted_ms is not None and found_ms is not None and _shorter(found_ms, wanted_ms):
        cost = (
            f"reprocess rebuilds a store from {duration(found_ms)} back at most, and a group "
            f"down longer than that loses sessions (DATA-LOSS)"
            if spec.role == "sessions"
            else f"dead letters and records of lost offsets go after {duration(found_ms)}, "
            "and completeness no longer reports them"
        )
        result.append(
            Difference(
                spec.name,
                "retention",
                f"{duration(found_ms)} (retention.ms {found_ms})",
                f"recommended {duration(wanted_ms)}",
                cost,
            )
        )
    wanted_bytes = _number(spec.config.get("retention.bytes"))
    found_bytes = _number(found.get("retention.bytes"))
    if wanted_bytes is not None and found_bytes is not None and _shorter(found_bytes, wanted_bytes):
        result.append(
            Difference(
                spec.name,
                "retention.bytes",
                str(found_bytes),
                "recommended -1 (no limit)" if wanted_bytes < 0 else f"recommended {wanted_bytes}",
                "a partition past that size drops its oldest messages whatever their age",
            )
        )
    return result


#: Configs compared by their own rules above.
_RULED: Final = frozenset(
    {"min.insync.replicas", "cleanup.policy", "retention.ms", "retention.bytes"}
)


def _others(spec: TopicSpec, found: dict[str, str]) -> list[Difference]:
    """Any other config ``kafka.topic_config`` sets (``compression.type`` ...)."""
    return [
        Difference(
            spec.name,
            name,
            found[name],
            f"kafka.topic_config sets {wanted}",
            "topic configs are set when sshtrail creates a topic, never changed",
        )
        for name, wanted in sorted(spec.config.items())
        if name not in _RULED and name in found and found[name] != wanted
    ]


def counted(number: int, noun: str) -> str:
    """``1 broker``, ``3 brokers``."""
    return f"{number} {noun}{'s' if number != 1 else ''}"


def _number(text: str | None) -> int | None:
    try:
        return int(text) if text is not None else None
    except ValueError:
        return None


def _shorter(found: int, wanted: int) -> bool:
    """Whether a retention limit ``found`` keeps less than ``wanted`` (-1: no limit)."""
    if found < 0:
        return False
    return wanted < 0 or found < wanted


def duration(ms: int) -> str:
    """A retention as people say it: ``30 days``, ``12 hours``, ``unlimited``."""
    if ms < 0:
        return "unlimited"
    for unit, size in (("day", 86_400_000), ("hour", 3_600_000), ("minute", 60_000)):
        if ms and ms % size == 0:
            count = ms // size
            return counted(count, unit)
    return f"{ms} ms"


def summary(found: FoundTopic) -> str:
    """``6 partitions, replication factor 3, min.insync.replicas 2, retention 30 days``."""
    parts = [
        counted(found.partitions, "partition"),
        f"replication factor {found.replicas}",
    ]
    if "min.insync.replicas" in found.config:
        parts.append(f"min.insync.replicas {found.config['min.insync.replicas']}")
    policy = found.config.get("cleanup.policy", "delete")
    if "compact" in policy:
        parts.append("compacted")
    retention = _number(found.config.get("retention.ms"))
    if "delete" in policy and retention is not None:
        parts.append(f"retention {duration(retention)}")
    return ", ".join(parts)
