"""A member the broker fences ends, and its replacement resumes: issue 40.

librdkafka reports a fenced static member as a fatal error (code ``_FATAL``);
the member must exit with a message naming the cause rather than stay alive
reading nothing, so that ``sshtrail up`` or the service manager starts a new
one, which resumes from the group's committed offsets.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import Consumer
from sqlalchemy import Engine

from sshtrail import migrate
from sshtrail.broker import EmbeddedBroker
from sshtrail.db import make_engine
from tests.support.cli import Running
from tests.support.consumers import (
    SESSION_TIMEOUT_MS,
    assert_store_equals_topic,
    chunk_count,
    create_topics,
    group_lag,
    start_member,
    wait_for,
    write_config,
)
from tests.support.kafka import Broker
from tests.support.recordings import keyed, produce, recording

pytestmark = pytest.mark.integration

SESSION_TIMEOUT_S = SESSION_TIMEOUT_MS / 1000
FENCED = "Static consumer fenced by other consumer with same group.instance.id"


def load(sessions: int) -> list[tuple[bytes | None, bytes]]:
    return [m for _ in range(sessions) for m in keyed(*recording(4, 256))]


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    url = f"sqlite:///{tmp_path / 'sshtrail.db'}"
    migrate.upgrade(url)
    engine = make_engine(url)
    yield engine
    engine.dispose()


def test_a_member_fenced_by_its_instance_id_exits_naming_the_cause(
    broker: Broker, store_topic: str, engine: Engine, tmp_path: Path
) -> None:
    """A second consumer joins with the member's ``group.instance.id``: Kafka fences the
    member. It exits non-zero with one line saying why; a member started again with the
    same id resumes from the committed offsets and nothing is lost or doubled."""
    servers = broker.bootstrap_servers
    group = f"{store_topic}-store"
    url = str(engine.url)
    config = write_config(tmp_path / "sshtrail.toml", servers, store_topic, url)
    member = start_member(config, "store", "--instance-id", "store-1")
    total = produce(servers, store_topic, load(10))
    wait_for(lambda: chunk_count(engine) == total, what="the first load stored")
    intruder = Consumer(
        {
            "bootstrap.servers": servers,
            "group.id": group,
            "group.instance.id": "store-1",
            "enable.auto.commit": False,
            "session.timeout.ms": int(SESSION_TIMEOUT_S * 1000),
            "partition.assignment.strategy": "cooperative-sticky",
        }
    )
    intruder.subscribe([store_topic])
    stop = threading.Event()

    def keep_polling() -> None:  # in the group, reading, committing nothing
        while not stop.is_set():
            intruder.poll(0.2)

    poller = threading.Thread(target=keep_polling)
    poller.start()
    try:
        wait_for(
            lambda: member.process.poll() is not None,
            timeout=60,
            what="the fenced member to exit, not to stay alive reading nothing",
        )
        status, _, err = member.wait()
    finally:
        stop.set()
        poller.join(10)
        intruder.close()  # static: it does not leave, the next member replaces it
    assert status == 1, err
    last = err.strip().splitlines()[-1]
    assert last.startswith("sshtrail: error: fatal Kafka error, this consumer cannot go on:"), err
    assert last.endswith(FENCED), last
    assert "the client retries" not in err  # not taken for a passing error
    total += produce(servers, store_topic, load(10))
    replacement = start_member(config, "store", "--instance-id", "store-1")
    try:
        wait_for(lambda: chunk_count(engine) == total, what="the second load stored")
        wait_for(lambda: sum(group_lag(servers, group, store_topic).values()) == 0)
    finally:
        status, _, err = replacement.stop(signal.SIGTERM)
    assert status == 0, err
    assert_store_equals_topic(engine, servers, store_topic)


@pytest.fixture(params=["kafka", "embedded"])
def any_broker(request: pytest.FixtureRequest) -> Broker:
    """Apache Kafka, then the embedded broker of ``up --demo``."""
    name = "broker" if request.param == "kafka" else "embedded_broker"
    found: Broker = request.getfixturevalue(name)
    return found


def test_a_member_paused_past_the_session_timeout_stores_everything_once(
    any_broker: Broker, topic_name: str, engine: Engine, tmp_path: Path
) -> None:
    """Issue 40 as a user met it: a static member (as ``up`` runs them) is frozen
    (SIGSTOP) past ``session.timeout.ms`` while sessions are published, then resumed
    (SIGCONT). Every chunk ends up stored exactly once and the lag returns to 0.

    On Kafka the broker dropped the frozen member; resumed, it rejoins with its id and
    catches up itself (asserted). The embedded broker keeps it as a member: resumed, it
    either carries on, or -- when librdkafka's own session timer fires before the first
    heartbeat is answered -- rejoins and is fenced by its own old membership, a fatal
    error. Then it must exit naming the cause (before issue 40 it stayed alive reading
    nothing), and the test starts a new member with the same id, as ``up`` or a service
    manager would; the new one resumes from the committed offsets."""
    servers = any_broker.bootstrap_servers
    embedded = isinstance(any_broker, EmbeddedBroker)
    create_topics(servers, topic_name, topic_name + ".dlq")
    group = f"{topic_name}-store"
    # On the embedded broker, what `up --demo` runs: eager assignment, resting members.
    demo = {"assignment_strategy": "roundrobin", "idle_check_ms": 100} if embedded else {}
    config = write_config(
        tmp_path / "sshtrail.toml", servers, topic_name, str(engine.url), None, **demo
    )
    member = start_member(config, "store", "--instance-id", "store-1")
    total = produce(servers, topic_name, load(10))
    wait_for(lambda: chunk_count(engine) == total, what="the first load stored")
    os.kill(member.process.pid, signal.SIGSTOP)
    try:
        total += produce(servers, topic_name, load(10))
        # Frozen past the session timeout: the broker gives up on the member.
        time.sleep(SESSION_TIMEOUT_S + 3)
        total += produce(servers, topic_name, load(10))
    finally:
        os.kill(member.process.pid, signal.SIGCONT)
    running: Running = member

    def committed_all() -> bool:
        return sum(group_lag(servers, group, topic_name).values()) == 0

    # Caught up means committed: a fenced member's commits are refused.
    wait_for(
        lambda: member.process.poll() is not None or committed_all(),
        timeout=60,
        what="the member to catch up or to end",
        every=0.5,
    )
    ended = member.process.poll() is not None
    assert embedded or not ended, member.stderr  # Kafka: it rejoins, nothing fatal
    if ended:
        status, _, err = member.wait()
        assert status == 1, err
        assert (
            err.strip()
            .splitlines()[-1]
            .startswith("sshtrail: error: fatal Kafka error, this consumer cannot go on: ")
        ), err
        running = start_member(config, "store", "--instance-id", "store-1")
    try:
        wait_for(lambda: chunk_count(engine) == total, timeout=90, what="every chunk stored")
        wait_for(committed_all, what="the group to commit everything", every=0.5)
    finally:
        status, _, err = running.stop(signal.SIGTERM)
    assert status == 0, err
    assert_store_equals_topic(engine, servers, topic_name)
