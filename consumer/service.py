"""Running one consumer-group member as a process: metrics, signals, the runner loop."""

from __future__ import annotations

import logging

from sqlalchemy import Engine
from sqlalchemy import exc as sa_exc

from consumer.metrics import ConsumerMetrics
from consumer.runner import GroupRunner, Writer
from sshtrail import migrate, search
from sshtrail.cli.signals import stop_on_signals
from sshtrail.db import make_engine
from sshtrail.errors import DatabaseError
from sshtrail.settings import Settings

log = logging.getLogger(__name__)

#: A write that takes longer than this is cancelled and retried (PostgreSQL),
#: so a hung database cannot hold a member past ``max.poll.interval.ms``.
STATEMENT_TIMEOUT_MS = 60_000


def open_database(settings: Settings) -> Engine:
    """The store's engine, after checking the schema is at the latest migration."""
    url = settings.database_url
    current, head = migrate.current_revision(url), migrate.head_revision()
    if current != head:
        raise DatabaseError(
            f"the database is at schema {current or 'none'}, this version needs {head}: "
            "run 'sshtrail db upgrade' first"
        )
    return member_engine(url)


def open_index(settings: Settings) -> Engine:
    """The search index's engine, its tables created if missing."""
    engine = member_engine(settings.search_url)
    try:
        search.ensure_schema(engine)
    except (sa_exc.DBAPIError, sa_exc.TimeoutError) as exc:
        engine.dispose()
        raise DatabaseError(f"cannot prepare the search index: {exc}") from None
    return engine


def member_engine(url: str) -> Engine:
    """A member's engine. No pre-ping: the runner retries a failed batch."""
    if url.startswith("postgres"):
        options = f"-c statement_timeout={STATEMENT_TIMEOUT_MS}"
        return make_engine(
            url, pre_ping=False, connect_args={"connect_timeout": 10, "options": options}
        )
    return make_engine(url, pre_ping=False)


def run_member(
    settings: Settings, group: str, writer: Writer, metrics_port: int | None, what: str
) -> int:
    """Run a member of ``group`` until SIGTERM or SIGINT; returns the exit status."""
    metrics = ConsumerMetrics(group)
    port = settings.consumer.metrics_port if metrics_port is None else metrics_port
    served = ""
    if port:
        bound = metrics.serve(settings.consumer.metrics_listen, port)
        served = f"; metrics on http://{settings.consumer.metrics_listen}:{bound}/metrics"
    runner = GroupRunner(settings, group, writer, metrics)

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
