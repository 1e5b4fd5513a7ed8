"""Running one consumer-group member as a process: its parts built, signals, the runner loop."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from typing import Any

import msgspec
from sqlalchemy import Engine
from sqlalchemy import exc as sa_exc

from consumer.deadletter import DeadLetters
from consumer.metrics import ConsumerMetrics
from consumer.runner import GroupRunner, RunnerOptions
from consumer.writer import Writer
from sshtrail import migrate, search
from sshtrail.commandkit.signals import stop_on_signals
from sshtrail.db import make_engine
from sshtrail.errors import ConfigError, DatabaseError, SchemaMismatch, SshtrailError
from sshtrail.kafka.adapters import KafkaGroupConsumer, KafkaProducer
from sshtrail.kafka.config import LARGE_FETCH, client_config
from sshtrail.kafka.resting import idle_check_s
from sshtrail.provenance import provenance
from sshtrail.settings import Settings
from sshtrail.statedir import secure

log = logging.getLogger(__name__)


class Stopped(SshtrailError):
    """Asked to stop before it could start (a signal while waiting for the database)."""


#: A write that takes longer than this is cancelled and retried (PostgreSQL),
#: so a hung database cannot hold a member past ``max.poll.interval.ms``.
STATEMENT_TIMEOUT_MS = 60_000


def assignment_strategy(settings: Settings) -> str:
    """librdkafka's ``partition.assignment.strategy`` for the consumer groups: ``auto``
    is cooperative-sticky, except on the embedded broker, which cannot always finish a
    cooperative rebalance (docs/decisions.md)."""
    chosen = settings.consumer.assignment_strategy
    if chosen != "auto":
        return chosen
    return "roundrobin" if settings.embedded_broker else "cooperative-sticky"


def membership(settings: Settings) -> dict[str, Any]:
    """librdkafka's group-protocol properties: KIP-848's ``consumer`` protocol leaves
    assignment and the session timeout to the broker (librdkafka refuses them)."""
    options = settings.consumer
    if options.group_protocol == "consumer":
        if settings.embedded_broker:
            raise ConfigError(
                "the embedded broker speaks only the classic group protocol; "
                '"consumer" (KIP-848) needs Apache Kafka 4 or later',
                key="consumer.group_protocol",
            )
        return {"group.protocol": "consumer"}
    return {
        "group.protocol": "classic",
        "partition.assignment.strategy": assignment_strategy(settings),
        "session.timeout.ms": options.session_timeout_ms,
    }


#: How many keep-alive periods a session may miss before the store marks it interrupted.
KEEPALIVES_MISSED = 5


def interrupted_after(settings: Settings) -> dt.timedelta:
    """Silence after which the store marks a session without an end ``interrupted``: the
    setting (or its former name), else :data:`KEEPALIVES_MISSED` keep-alive periods of
    the gateway; without keep-alives, its idle timeout plus five minutes (an hour if
    that is 0)."""
    chosen = settings.consumer.interrupted_after_s or settings.consumer.incomplete_after_s
    if chosen:
        return dt.timedelta(seconds=chosen)
    gateway = settings.gateway
    if gateway.keepalive_s:
        return dt.timedelta(seconds=KEEPALIVES_MISSED * gateway.keepalive_s)
    return dt.timedelta(seconds=gateway.idle_timeout_s + 300 if gateway.idle_timeout_s else 3600)


def group_consumer(settings: Settings, group: str) -> KafkaGroupConsumer:
    """A member of ``group`` on the sessions topic, committing by hand."""
    options = settings.consumer
    static = {"group.instance.id": options.instance_id} if options.instance_id else {}
    config = client_config(
        settings,
        **static,
        **{
            "group.id": group,
            "client.id": f"{group}-{settings.instance}",
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "auto.offset.reset": "earliest",
            **membership(settings),
            "max.poll.interval.ms": options.max_poll_interval_ms,
            "max.partition.fetch.bytes": 4 << 20,
            **LARGE_FETCH,
        },
    )
    return KafkaGroupConsumer(config, settings.kafka.topic)


def dead_letters(settings: Settings, group: str) -> DeadLetters:
    producer = KafkaProducer(
        client_config(
            settings,
            **{
                "enable.idempotence": True,
                "acks": "all",
                "linger.ms": 5,
                # Whatever the sessions topic took must fit; the broker has the last word.
                "message.max.bytes": 1_000_000_000,
            },
        )
    )
    return DeadLetters(producer, settings.kafka.dlq_topic, group)


def runner_options(settings: Settings) -> RunnerOptions:
    options = settings.consumer
    return RunnerOptions(
        batch_size=options.batch_size,
        batch_wait_s=options.batch_wait_ms / 1000,
        retry_initial_s=options.retry_initial_ms / 1000,
        retry_max_s=max(options.retry_max_ms, options.retry_initial_ms) / 1000,
        dead_letter_max_consecutive=options.dead_letter_max_consecutive,
        dead_letter_max_ratio=options.dead_letter_max_ratio,
        idle_check_s=idle_check_s(settings),
        provenance=provenance(settings, "consumer"),
        # Often enough that a silent session is marked within a quarter of the timeout.
        housekeeping_s=min(30.0, interrupted_after(settings).total_seconds() / 4),
    )


def build_runner(
    settings: Settings, group: str, writer: Writer, metrics: ConsumerMetrics
) -> GroupRunner:
    return GroupRunner(
        group_consumer(settings, group),
        group=group,
        writer=writer,
        dead_letters=dead_letters(settings, group),
        metrics=metrics,
        options=runner_options(settings),
    )


def open_database(settings: Settings, wait: bool = False) -> Engine:
    """The store's engine, after checking the schema is at the latest migration.

    With ``wait`` (a member starting), a database that cannot be reached is waited
    for -- as a member waits for it during an outage -- until SIGTERM; otherwise (a
    command) that is an error at once. A schema other than this version's is an
    error either way (:class:`~sshtrail.errors.SchemaMismatch`).
    """
    url = settings.database_url

    def check() -> Engine:
        current, head = migrate.current_revision(url), migrate.head_revision()
        if current != head:
            raise SchemaMismatch(
                f"the database is at schema {current or 'none'}, this version needs {head}: "
                "run 'sshtrail db upgrade' first"
            )
        return member_engine(url)

    return _patiently(check, "the store", settings) if wait else check()


def open_index(settings: Settings, wait: bool = False) -> Engine:
    """The search index's engine, its tables created if missing (``wait``: as above)."""

    def prepare() -> Engine:
        engine = member_engine(settings.search_url)
        try:
            search.ensure_schema(engine)
        except (sa_exc.DBAPIError, sa_exc.TimeoutError) as exc:
            engine.dispose()
            raise DatabaseError(f"cannot prepare the search index: {exc}") from None
        return engine

    return _patiently(prepare, "the search index", settings) if wait else prepare()


def _patiently(attempt: Callable[[], Engine], what: str, settings: Settings) -> Engine:
    """``attempt()`` until it stops raising :class:`DatabaseError`, with the members'
    back-off (``consumer.retry_*``); :class:`Stopped` if a stop signal comes first."""
    delay = settings.consumer.retry_initial_ms / 1000
    with stop_on_signals() as stop:
        while True:
            try:
                engine = attempt()
            except DatabaseError as exc:
                log.warning("%s is not ready, waiting %.1f s: %s", what, delay, exc)
                if stop.wait(delay):
                    raise Stopped(f"stopped while waiting for {what}") from None
                delay = min(delay * 2, settings.consumer.retry_max_ms / 1000)
                continue
            # A signal that came while the attempt ran (its handler is this block's)
            # would otherwise be lost: the member would run on, deaf to it.
            if stop.received:
                engine.dispose()
                raise Stopped(f"stopped while opening {what}")
            return engine


def member_engine(url: str) -> Engine:
    """A member's engine. No pre-ping: the runner retries a failed batch."""
    if url.startswith("postgres"):
        options = f"-c statement_timeout={STATEMENT_TIMEOUT_MS}"
        connect: dict[str, Any] = {"connect_timeout": 10, "options": options}
        return make_engine(url, pre_ping=False, connect_args=connect)
    return make_engine(url, pre_ping=False)


def run_member(
    settings: Settings,
    group: str,
    writer: Writer,
    metrics_port: int | None,
    what: str,
    *,
    metrics: ConsumerMetrics | None = None,
) -> int:
    """Run a member of ``group`` until SIGTERM or SIGINT; returns the exit status.
    ``metrics``: the registry the writer adds its own series to, if it has any."""
    secure(settings.state_path)
    metrics = metrics or ConsumerMetrics(group)
    port = settings.consumer.metrics_port if metrics_port is None else metrics_port
    served = ""
    if port:
        bound = metrics.serve(settings.consumer.metrics_listen, port)
        served = f"; metrics on http://{settings.consumer.metrics_listen}:{bound}/metrics"
    runner = build_runner(settings, group, writer, metrics)

    def stop(name: str) -> None:
        log.info("%s: finishing the batch in hand, then leaving the group", name)
        runner.stop()

    with stop_on_signals(stop):
        print(
            f"{what}: group {group} reading {settings.kafka.topic} from "
            f"{settings.bootstrap_servers}{served}",
            flush=True,
        )
        runner.run()
    print(
        f"{what}: stopped; {metrics.value('sshtrail_chunks_written_total'):.0f} chunks "
        f"written, {metrics.value('sshtrail_messages_dead_lettered_total'):.0f} "
        "dead-lettered",
        flush=True,
    )
    return 0


def with_instance_id(settings: Settings, instance_id: str | None) -> Settings:
    """``settings`` with ``consumer.instance_id`` replaced (``--instance-id``), if given."""
    if not instance_id:
        return settings
    consumer = msgspec.structs.replace(settings.consumer, instance_id=instance_id)
    return msgspec.structs.replace(settings, consumer=consumer)
