"""The alert group's writer against a real store (SQLite and PostgreSQL): each alert once,
whatever is read again -- a re-delivery, a member that restarts mid-session, a
reprocess -- and rules read again when their folder changes."""

from __future__ import annotations

import datetime as dt
import shutil
import time
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select

from consumer.alerter import AlertWriter
from consumer.alertrules import LOOK_EVERY_S, RulesInForce
from consumer.messages import Received
from sshtrail.tables import ALERTS
from sshtrail.wire import decode_chunk
from tests.support.recordings import events_session, typed_at_prompt
from tests.support.sigma import SIGMA, sigma_rules

pytestmark = pytest.mark.integration

RULE = "proc_creation_lnx_mkfifo_named_pipe_creation.yml"


def received(messages: list[bytes]) -> list[Received]:
    at = dt.datetime.now(dt.UTC)
    return [Received(decode_chunk(m), 0, n, at) for n, m in enumerate(messages)]


def count(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(ALERTS)).scalar_one())


@pytest.fixture
def rules(tmp_path: Path) -> Path:
    sigma_rules(RULE)
    folder = tmp_path / "rules"
    folder.mkdir()
    shutil.copy(SIGMA / RULE, folder)
    return folder


def test_every_alert_is_stored_once_however_often_its_chunks_are_read(
    store_engine: Engine, rules: Path
) -> None:
    _, messages = events_session(
        [
            typed_at_prompt(b"mkfifo /tmp/p1", 10),
            typed_at_prompt(b"ls", 20),
            typed_at_prompt(b"mkfifo /tmp/p2", 30),
        ]
    )
    chunks = received(messages)
    writer = AlertWriter(store_engine, RulesInForce(rules))
    writer.write(chunks[:3])
    writer.write(chunks[3:])
    assert count(store_engine) == 2
    writer.write(chunks)  # re-delivered
    assert count(store_engine) == 2
    # A member that starts on the session's last chunks (a restart, a rebalance):
    # the store has no chunks of it here, so it reads on from where it is.
    AlertWriter(store_engine, RulesInForce(rules)).write(chunks[2:])
    assert count(store_engine) == 2
    # Read whole again by a new member (a reprocess).
    AlertWriter(store_engine, RulesInForce(rules)).write(chunks)
    assert count(store_engine) == 2
    with store_engine.connect() as conn:
        stored = conn.execute(select(ALERTS.c.command, ALERTS.c.operator)).all()
    assert sorted(stored) == [("mkfifo /tmp/p1", "alice"), ("mkfifo /tmp/p2", "alice")]


def test_rules_are_read_again_when_their_folder_changes_and_a_broken_one_stops_nothing(
    store_engine: Engine, rules: Path
) -> None:
    force = RulesInForce(rules)
    assert len(force.current().rules) == 1
    (rules / "broken.yml").write_text("title: [not closed\n")
    (rules / "other.yml").write_bytes((SIGMA / "proc_creation_lnx_userdel.yml").read_bytes())
    time.sleep(LOOK_EVERY_S + 0.1)
    now = force.current()
    assert len(now.rules) == 2
    [broken] = [status for status in now.statuses if status.path.endswith("broken.yml")]
    assert broken.status == "invalid"
    _, messages = events_session([typed_at_prompt(b"userdel intruder", 10)])
    AlertWriter(store_engine, force).write(received(messages))
    assert count(store_engine) == 1
