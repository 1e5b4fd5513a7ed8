"""The topics sshtrail creates, and how it judges topics it finds (sshtrail/kafka/layout.py)."""

from __future__ import annotations

import pytest

from sshtrail.cli.up import _topics_line
from sshtrail.kafka.admin import Topics
from sshtrail.kafka.layout import (
    RETENTION_MS,
    Difference,
    FoundTopic,
    TopicSpec,
    differences,
    duration,
    recommended,
    summary,
)
from sshtrail.settings import Settings, load_settings


def _settings(**env: str) -> Settings:
    return load_settings(environ={f"SSHTRAIL_{key}": value for key, value in env.items()})


def _as_created(
    spec: TopicSpec,
    *,
    partitions: int | None = None,
    replicas: int | None = None,
    config: dict[str, str] | None = None,
    messages: int = 0,
) -> FoundTopic:
    """What the brokers describe for a topic created from ``spec``, but for the changes."""
    return FoundTopic(
        spec.name,
        spec.partitions if partitions is None else partitions,
        spec.replication if replicas is None else replicas,
        {**spec.config, **(config or {})},
        messages,
    )


def _only(
    spec: TopicSpec,
    *,
    partitions: int | None = None,
    replicas: int | None = None,
    config: dict[str, str] | None = None,
    messages: int = 0,
) -> Difference:
    found = _as_created(
        spec, partitions=partitions, replicas=replicas, config=config, messages=messages
    )
    [difference] = differences(spec, found)
    return difference


@pytest.mark.parametrize(("brokers", "replicas", "insync"), [(1, 1, "1"), (2, 2, "1"), (5, 3, "2")])
def test_created_with_up_to_three_replicas_and_one_less_in_sync(
    brokers: int, replicas: int, insync: str
) -> None:
    sessions, dead_letters, control, heads = recommended(_settings(), brokers)
    assert (sessions.name, dead_letters.name, control.name) == (
        "sshtrail.sessions",
        "sshtrail.sessions.dlq",
        "sshtrail.control",
    )
    assert heads.name == "sshtrail.access-log"
    for spec in (sessions, dead_letters, control, heads):
        assert (spec.partitions, spec.replication) == (6, replicas)
        assert spec.config["min.insync.replicas"] == insync
    assert sessions.config["retention.ms"] == dead_letters.config["retention.ms"] == "2592000000"
    assert sessions.config["cleanup.policy"] == "delete"
    assert control.config == {"min.insync.replicas": insync, "cleanup.policy": "compact"}
    assert heads.config == control.config


def test_settings_override_the_recommendation_but_not_the_compacted_control_topic() -> None:
    settings = _settings(
        KAFKA__PARTITIONS="12",
        KAFKA__REPLICATION_FACTOR="2",
        **{"KAFKA__TOPIC_CONFIG__RETENTION.MS": "86400000"},
        **{"KAFKA__TOPIC_CONFIG__MIN.INSYNC.REPLICAS": "2"},
        **{"KAFKA__TOPIC_CONFIG__CLEANUP.POLICY": "delete"},
    )
    sessions, _, control, _ = recommended(settings, brokers=5)
    assert (sessions.partitions, sessions.replication) == (12, 2)
    assert sessions.config["retention.ms"] == "86400000"
    assert sessions.config["min.insync.replicas"] == "2"
    assert control.config == {"min.insync.replicas": "2", "cleanup.policy": "compact"}
    assert sessions.replication_source == "kafka.replication_factor"


def test_a_topic_as_sshtrail_creates_it_has_no_difference() -> None:
    for spec in recommended(_settings(), brokers=3):
        assert differences(spec, _as_created(spec, messages=10)) == []


def test_another_partition_count_is_a_warning_while_empty_and_refused_with_messages() -> None:
    sessions, dead_letters, control, heads = recommended(_settings(), brokers=3)
    empty = _only(sessions, partitions=1)
    assert not empty.refuses
    assert str(empty).startswith(
        "sshtrail.sessions: partitions 1, kafka.partitions is 6: it holds no messages"
    )
    held = _only(sessions, partitions=12, messages=3)
    assert held.refuses
    assert "it holds 3 messages" in str(held)
    assert "set kafka.partitions = 12" in str(held)
    assert _only(control, partitions=1, messages=1).refuses
    assert not _only(dead_letters, partitions=1, messages=100).refuses
    # The access log's heads are read from every partition, whatever their order.
    for count in (1, 12):
        assert differences(heads, _as_created(heads, partitions=count, messages=9)) == []


@pytest.mark.parametrize("policy", ["delete", "compact,delete", "delete, compact"])
def test_a_control_topic_not_only_compacted_is_refused(policy: str) -> None:
    control = recommended(_settings(), brokers=3)[2]
    difference = _only(control, config={"cleanup.policy": policy})
    assert difference.refuses
    assert str(difference).startswith(
        f"sshtrail.control: cleanup.policy {policy}, must be compact: deletion by retention"
    )


def test_compacted_sessions_or_dead_letters_are_refused() -> None:
    sessions, dead_letters, _, _ = recommended(_settings(), brokers=3)
    assert "DATA-LOSS" in str(_only(sessions, config={"cleanup.policy": "compact"}))
    assert _only(dead_letters, config={"cleanup.policy": "compact"}).refuses


def test_replication_and_min_insync_replicas_compared_with_the_topics_own_replicas() -> None:
    sessions = recommended(_settings(), brokers=3)[0]
    few = _only(sessions, replicas=1, config={"min.insync.replicas": "1"})
    assert str(few) == (
        "sshtrail.sessions: replication factor 1, recommended 3 (the cluster has 3 brokers): a "
        "partition is unavailable while its one broker is down, and lost with its disk"
    )
    assert not few.refuses
    loose = _only(sessions, config={"min.insync.replicas": "1"})
    assert str(loose).startswith(
        "sshtrail.sessions: min.insync.replicas 1, recommended 2 for 3 replicas: a write is "
        "acknowledged once 1 replica holds it, and lost if that broker fails"
    )
    strict = _only(sessions, config={"min.insync.replicas": "3"})
    assert "with 1 of its 3 replicas down the brokers refuse writes" in str(strict)
    assert not strict.refuses


def test_min_insync_replicas_above_the_replicas_is_refused() -> None:
    sessions = recommended(_settings(), brokers=3)[0]
    [refused, fewer] = differences(
        sessions, _as_created(sessions, replicas=1, config={"min.insync.replicas": "2"})
    )
    assert refused.refuses  # refusals first
    assert not fewer.refuses
    assert str(refused).startswith(
        "sshtrail.sessions: min.insync.replicas 2, at most its replication factor 1: the "
        "brokers refuse every write sshtrail makes (acks=all)"
    )


def test_min_insync_replicas_of_the_settings_is_what_is_checked() -> None:
    settings = _settings(**{"KAFKA__TOPIC_CONFIG__MIN.INSYNC.REPLICAS": "3"})
    sessions = recommended(settings, brokers=5)[0]
    found = FoundTopic(sessions.name, 6, 5, {**sessions.config, "min.insync.replicas": "2"})
    [difference] = differences(sessions, found)
    assert "min.insync.replicas 2, recommended 3 (kafka.topic_config)" in str(difference)


def test_shorter_retention_is_a_warning_longer_or_unlimited_is_none() -> None:
    sessions, dead_letters, control, _ = recommended(_settings(), brokers=1)
    short = _only(sessions, config={"retention.ms": "86400000"})
    assert str(short) == (
        "sshtrail.sessions: retention 1 day (retention.ms 86400000), recommended 30 days: "
        "reprocess rebuilds a store from 1 day back at most, and a group down longer than "
        "that loses sessions (DATA-LOSS)"
    )
    assert not short.refuses
    assert "completeness" in str(_only(dead_letters, config={"retention.ms": "3600000"}))
    for longer in ("-1", str(RETENTION_MS * 2)):
        assert differences(sessions, _as_created(sessions, config={"retention.ms": longer})) == []
    bounded = _only(sessions, config={"retention.bytes": "1073741824"})
    assert "retention.bytes 1073741824, recommended -1 (no limit)" in str(bounded)
    # The control topic is compacted: its retention is not the point.
    assert differences(control, _as_created(control, config={"retention.ms": "1000"})) == []


def test_other_topic_configs_of_the_settings_are_compared() -> None:
    settings = _settings(**{"KAFKA__TOPIC_CONFIG__COMPRESSION.TYPE": "zstd"})
    sessions = recommended(settings, brokers=1)[0]
    difference = _only(sessions, config={"compression.type": "producer"})
    assert str(difference).startswith(
        "sshtrail.sessions: compression.type producer, kafka.topic_config sets zstd"
    )


def test_summaries_and_durations_read_as_people_say_them() -> None:
    sessions, _, control, _ = recommended(_settings(), brokers=3)
    assert summary(_as_created(sessions)) == (
        "6 partitions, replication factor 3, min.insync.replicas 2, retention 30 days"
    )
    assert summary(_as_created(control, partitions=1)) == (
        "1 partition, replication factor 3, min.insync.replicas 2, compacted"
    )
    assert [duration(ms) for ms in (-1, 0, 1500, 60_000, 7_200_000, 86_400_000)] == [
        "unlimited",
        "0 ms",
        "1500 ms",
        "1 minute",
        "2 hours",
        "1 day",
    ]


def test_ups_topics_line_names_the_alerts_topic_when_alerts_run() -> None:
    names = ["s", "s.dlq", "control", "heads", "alerts"]
    found = [FoundTopic(name, 3, 1) for name in names]
    line = _topics_line(Topics(found, names, []))
    assert line.endswith("access-log heads in heads, alerts in alerts (created)")
    assert "alerts in" not in _topics_line(Topics(found[:4], [], []))
