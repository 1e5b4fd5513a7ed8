"""``sshtrail up``: start the local stack in one process tree, stop it with Ctrl-C."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from sshtrail import demo, migrate
from sshtrail.broker import EmbeddedBroker
from sshtrail.cli.broker import start_broker
from sshtrail.cli.children import Children
from sshtrail.cli.signals import stop_on_signals
from sshtrail.db import normalize_url
from sshtrail.errors import BrokerError
from sshtrail.kafka import ensure_topics
from sshtrail.settings import Settings


def register(commands: Any) -> None:
    parser = commands.add_parser(
        "up",
        help="start the local stack: broker, database, gateway (Ctrl-C stops it)",
        description="Start everything sshtrail needs on this machine and keep it "
        "running until Ctrl-C or SIGTERM: the embedded broker (unless "
        "kafka.bootstrap_servers is set), the topics, the session store at the latest "
        "schema, one member of each consumer group (store, index) and the gateway. A "
        "second run reuses the state in state_dir.",
    )
    parser.add_argument(
        "--demo",
        action="store_true",
        help="also start a demo target (a login shell as you, loopback only) and a demo "
        "operator, and print the ssh command to try",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    state = settings.state_path.resolve()
    state.mkdir(parents=True, exist_ok=True)
    config: Path | None = Path(args.config).resolve() if args.config else None
    trial: demo.Demo | None = None
    if args.demo:
        settings, trial = demo.prepare(settings)
        config = trial.config
    children = Children(config)
    with stop_on_signals() as stop:
        broker: EmbeddedBroker | None = None
        try:
            broker = _start_infrastructure(settings)
            if trial is not None:
                children.start(
                    "demo target",
                    "demo-target",
                    "--port",
                    str(trial.port),
                    "--host-key",
                    str(trial.target_host_key),
                    "--authorized-keys",
                    str(trial.authorized_keys),
                    port=trial.port,
                )
                _say(
                    "demo",
                    f"target {demo.NAME!r}: a login shell as {_user(settings)} "
                    f"on 127.0.0.1:{trial.port}",
                )
            # A static member id: restarted, it takes its partitions back at once.
            children.start("store", "store", "--instance-id", f"{settings.instance}-up-store")
            _say(
                "store",
                f"consumer group {settings.consumer.store_group} writes sessions to the database",
            )
            children.start("index", "index", "--instance-id", f"{settings.instance}-up-index")
            _say(
                "index",
                f"consumer group {settings.consumer.index_group} indexes them for "
                f"search in {_shown(settings.search_url)}",
            )
            children.start("gateway", "gateway", port=settings.gateway.port)
            _say(
                "gateway",
                f"{settings.gateway.listen}:{settings.gateway.port}, operators "
                f"log in as OPERATOR:TARGET; {len(settings.operators)} operators, "
                f"{len(settings.targets)} targets configured",
            )
            _say("state", str(state))
            if trial is not None:
                demo.trust_gateway(settings, trial)
                _say("try", "this, then type a few commands and exit:")
                print(demo.ssh_command(settings, trial), flush=True)
            _say("ready", "press Ctrl-C to stop")
            while not stop.wait(0.5):
                children.check()
                if broker is not None and broker.poll() is not None:
                    raise BrokerError(
                        "the embedded broker exited unexpectedly; see "
                        f"{settings.broker_data_dir / 'broker.log'}"
                    )
        finally:
            children.stop()
            if broker is not None:
                broker.stop()
    _say("stopped", f"on {stop.name}; state kept in {state}")
    return 0


def _start_infrastructure(settings: Settings) -> EmbeddedBroker | None:
    broker = None
    if settings.embedded_broker:
        broker = start_broker(settings.broker.host, settings.broker.port, settings.broker_data_dir)
        _say(
            "broker",
            f"embedded, {broker.bootstrap_servers}, data in {settings.broker_data_dir.resolve()}",
        )
    else:
        _say("broker", f"external, {settings.kafka.bootstrap_servers}")
    created = ensure_topics(settings)
    topics = f"{settings.kafka.topic} ({settings.kafka.partitions} partitions), "
    topics += f"dead letters in {settings.kafka.dlq_topic}"
    _say("topics", topics + (" (created)" if created else ""))
    migrate.upgrade(settings.database_url)
    revision = migrate.current_revision(settings.database_url)
    _say("database", f"{_shown(settings.database_url)} at schema {revision}")
    return broker


def _shown(database_url: str) -> str:
    """A database URL to print: password hidden, a SQLite path made absolute."""
    url = normalize_url(database_url)
    if url.get_backend_name() == "sqlite" and url.database:
        url = url.set(database=str(Path(url.database).resolve()))  # say where it really is
    return url.render_as_string(hide_password=True)


def _user(settings: Settings) -> str:
    return next(t.user for t in settings.targets if t.name == demo.NAME)


def _say(part: str, what: str) -> None:
    print(f"{part:>9}  {what}", file=sys.stdout, flush=True)
