"""The consumer groups' own policy, from the settings."""

from __future__ import annotations

import datetime as dt

from consumer.service import assignment_strategy, incomplete_after
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


def test_a_session_is_incomplete_after_the_gateway_idle_limit_and_a_grace() -> None:
    assert incomplete_after(load_settings(environ={})) == dt.timedelta(seconds=3600 + 300)
    no_idle = load_settings(environ={"SSHTRAIL_GATEWAY__IDLE_TIMEOUT_S": "0"})
    assert incomplete_after(no_idle) == dt.timedelta(seconds=3600)
    set_ = load_settings(environ={"SSHTRAIL_CONSUMER__INCOMPLETE_AFTER_S": "60"})
    assert incomplete_after(set_) == dt.timedelta(seconds=60)
