"""The consumer groups' own policy, from the settings."""

from __future__ import annotations

import datetime as dt
import os
import signal
from pathlib import Path

import pytest
from sqlalchemy import Engine

from consumer.service import (
    Stopped,
    _patiently,
    assignment_strategy,
    interrupted_after,
    membership,
)
from sshtrail.db import make_engine
from sshtrail.errors import ConfigError, DatabaseError
from sshtrail.kafka.resting import idle_check_s
from sshtrail.settings import load_settings


def test_consumers_pick_an_assignment_strategy_the_broker_can_finish() -> None:
    embedded = load_settings(environ={})
    assert assignment_strategy(embedded) == "roundrobin"
    kafka = load_settings(environ={"SSHTRAIL_KAFKA__BOOTSTRAP_SERVERS": "kafka1:9092"})
    assert assignment_strategy(kafka) == "cooperative-sticky"
    chosen = load_settings(
        environ={
            "SSHTRAIL_KAFKA__BOOTSTRAP_SERVERS": "kafka1:9092",
            "SSHTRAIL_CONSUMER__ASSIGNMENT_STRATEGY": "range",
        }
    )
    assert assignment_strategy(chosen) == "range"


def test_the_consumer_group_protocol_leaves_assignment_to_the_broker() -> None:
    kafka = {"SSHTRAIL_KAFKA__BOOTSTRAP_SERVERS": "kafka1:9092"}
    classic = membership(load_settings(environ=kafka))
    assert classic == {
        "group.protocol": "classic",
        "partition.assignment.strategy": "cooperative-sticky",
        "session.timeout.ms": 45_000,
    }
    kip848 = load_settings(environ={**kafka, "SSHTRAIL_CONSUMER__GROUP_PROTOCOL": "consumer"})
    # librdkafka refuses a consumer built with either of the classic properties.
    assert membership(kip848) == {"group.protocol": "consumer"}
    embedded = load_settings(environ={"SSHTRAIL_CONSUMER__GROUP_PROTOCOL": "consumer"})
    with pytest.raises(ConfigError, match=r"consumer\.group_protocol: .*embedded broker"):
        membership(embedded)


def test_only_members_on_the_embedded_broker_rest_when_caught_up() -> None:
    """A real Kafka holds an empty fetch for ``fetch.wait.max.ms``: resting there would
    only add latency. The embedded broker answers at once: members rest (issue 17)."""
    assert idle_check_s(load_settings(environ={})) == 0.1
    kafka = load_settings(environ={"SSHTRAIL_KAFKA__BOOTSTRAP_SERVERS": "kafka1:9092"})
    assert idle_check_s(kafka) == 0.0
    chosen = load_settings(environ={"SSHTRAIL_CONSUMER__IDLE_CHECK_MS": "0"})
    assert idle_check_s(chosen) == 0.0


def test_a_silent_session_is_interrupted_after_five_keepalives_of_its_gateway() -> None:
    assert interrupted_after(load_settings(environ={})) == dt.timedelta(seconds=5 * 60)
    slower = load_settings(environ={"SSHTRAIL_GATEWAY__KEEPALIVE_S": "120"})
    assert interrupted_after(slower) == dt.timedelta(seconds=600)
    set_ = load_settings(environ={"SSHTRAIL_CONSUMER__INTERRUPTED_AFTER_S": "60"})
    assert interrupted_after(set_) == dt.timedelta(seconds=60)
    former = load_settings(environ={"SSHTRAIL_CONSUMER__INCOMPLETE_AFTER_S": "90"})
    assert interrupted_after(former) == dt.timedelta(seconds=90)


def test_without_keepalives_a_silent_session_waits_for_the_idle_limit_and_a_grace() -> None:
    quiet = {"SSHTRAIL_GATEWAY__KEEPALIVE_S": "0"}
    assert interrupted_after(load_settings(environ=quiet)) == dt.timedelta(seconds=3600 + 300)
    no_idle = load_settings(environ={**quiet, "SSHTRAIL_GATEWAY__IDLE_TIMEOUT_S": "0"})
    assert interrupted_after(no_idle) == dt.timedelta(seconds=3600)


def test_a_stop_signal_while_the_database_is_being_opened_is_not_lost(tmp_path: Path) -> None:
    """SIGTERM while the attempt runs (a slow ``ensure_schema``): the member must stop,
    not run on with the signal swallowed -- ``up`` would wait on it for ever."""
    settings = load_settings(environ={"SSHTRAIL_CONSUMER__RETRY_INITIAL_MS": "10"})
    opened: list[Engine] = []
    before = signal.getsignal(signal.SIGTERM)

    def attempt() -> Engine:
        if not opened:
            opened.append(make_engine(f"sqlite:///{tmp_path / 'x.db'}"))
            raise DatabaseError("not yet")
        os.kill(os.getpid(), signal.SIGTERM)  # delivered to the block's handler
        return opened[0]

    with pytest.raises(Stopped, match="while opening the index"):
        _patiently(attempt, "the index", settings)
    assert signal.getsignal(signal.SIGTERM) == before


def test_a_database_that_answers_is_opened_without_a_signal(tmp_path: Path) -> None:
    settings = load_settings(environ={})
    engine = make_engine(f"sqlite:///{tmp_path / 'x.db'}")
    assert _patiently(lambda: engine, "the index", settings) is engine
