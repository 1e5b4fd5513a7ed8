"""Fixtures for real services: Apache Kafka, the embedded broker, PostgreSQL, an OpenSSH target.

Each is started once per test run on a free loopback port. A service that is
not there skips its tests with the reason on a developer's machine and fails
them when ``CI=true``.
"""

from __future__ import annotations

# First: the suite's own knobs leave the environment before anything starts.
import tests.support.knobs  # noqa: F401  # isort: skip

import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient, NewTopic
from sqlalchemy import Engine

from sshtrail import migrate
from sshtrail.broker import EmbeddedBroker, free_port
from sshtrail.db import make_engine
from sshtrail.errors import BrokerError
from sshtrail.kafka.layout import recommended
from sshtrail.settings import Settings
from tests.support import postgres
from tests.support.browser import require_chromium
from tests.support.cli import Running
from tests.support.consumers import create_topics
from tests.support.kafka import Broker, KafkaCluster, KafkaUnavailable
from tests.support.services import unavailable
from tests.support.sshd import SshdTarget, find_sshd


@pytest.fixture(autouse=True)
def _no_leftover_processes() -> Iterator[None]:
    """Kill the ``sshtrail`` children a failing test did not get to stop."""
    yield
    while Running.started:
        child = Running.started.pop()
        if child.process.poll() is None:
            child.process.kill()
            child.process.wait(10)


@pytest.fixture(scope="session")
def kafka_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaCluster]:
    """Apache Kafka, one KRaft node, shared by the run (a worker's); topics are per test.

    The pipeline's tests run here: this is the broker production uses.
    """
    cluster = KafkaCluster(tmp_path_factory.mktemp("kafka"))
    try:
        cluster.start()
    except (KafkaUnavailable, TimeoutError) as exc:
        cluster.stop(timeout=5)
        unavailable(f"Apache Kafka cannot start: {exc}")
    # The access log's heads go to web.access_log_topic, which `sshtrail up` creates.
    # Missing here, every command and console that logs a look waited out its producer's
    # flush on exit (five seconds each); tests that read heads use a topic of their own.
    # Made as sshtrail makes it (compacted): commands that check the topics refuse any other.
    _create_as_sshtrail_does(cluster.bootstrap_servers, "access-log heads")
    yield cluster
    cluster.stop(timeout=10)  # its data is thrown away


@pytest.fixture(scope="session")
def broker(kafka_broker: KafkaCluster) -> KafkaCluster:
    """The run's Apache Kafka (``kafka_broker``), under the name most tests ask for.

    A module that runs its tests on both brokers overrides ``broker`` with a
    parametrized fixture; it must take ``kafka_broker`` by ``getfixturevalue``, not
    ``broker`` as an argument: a parametrized fixture's argument of the same name
    becomes parametrized too, and pytest stopped and started the run's Kafka at every
    parameter switch (seven seconds a test in test_broker_conformance.py)."""
    return kafka_broker


def _create_as_sshtrail_does(servers: str, role: str) -> None:
    spec = next(spec for spec in recommended(Settings(), 1) if spec.role == role)
    admin = AdminClient({"bootstrap.servers": servers})
    topic = NewTopic(spec.name, spec.partitions, spec.replication, config=spec.config)
    for future in admin.create_topics([topic]).values():
        future.result(15)


@pytest.fixture(scope="session")
def embedded_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedBroker]:
    """The embedded broker of ``sshtrail up --demo``, for what the demo promises."""
    data = tmp_path_factory.mktemp("embedded-broker")
    with (data / "broker.log").open("ab") as log:
        instance = EmbeddedBroker("127.0.0.1", free_port(), data, log)
        try:
            instance.start()
        except BrokerError as exc:
            unavailable(f"embedded broker cannot start: {exc}")
    yield instance
    instance.stop(timeout=3)  # its data is thrown away: no need to wait for a clean close


@pytest.fixture
def chromium_installed() -> None:
    """Debian's chromium and its driver: missing, a browser test skips, or fails in CI."""
    require_chromium()


@pytest.fixture
def topic_name() -> str:
    """A fresh topic name, so tests never see each other's messages."""
    return f"test.{uuid.uuid4().hex[:12]}"


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'sshtrail.db'}"


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """Each test that takes this runs on a fresh SQLite file and on PostgreSQL."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'sshtrail.db'}"
        return
    with postgres.fresh_database() as url:
        yield url


@pytest.fixture
def store_engine(database_url: str) -> Iterator[Engine]:
    """An engine on ``database_url``, migrated to the latest schema."""
    migrate.upgrade(database_url)
    engine = make_engine(database_url)
    yield engine
    engine.dispose()


@pytest.fixture
def store_topic(broker: Broker, topic_name: str) -> str:
    """A fresh 3-partition sessions topic with its ``.dlq`` beside it."""
    create_topics(broker.bootstrap_servers, topic_name, topic_name + ".dlq")
    return topic_name


@pytest.fixture(scope="session")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SshdTarget]:
    """A real OpenSSH server on loopback that the current user can log in to."""
    binary = find_sshd()
    if binary is None:
        unavailable("OpenSSH sshd is not installed (apt-get install openssh-server)")
    if shutil.which("ssh") is None:
        unavailable("the OpenSSH client is not installed (apt-get install openssh-client)")
    target = SshdTarget(binary, tmp_path_factory.mktemp("sshd"))
    target.start()
    yield target
    target.stop()
