"""``sshtrail up``: start the local stack in one process tree, stop it with Ctrl-C."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from sshtrail import migrate
from sshtrail.broker import EmbeddedBroker
from sshtrail.cli.broker import start_broker
from sshtrail.cli.signals import stop_on_signals
from sshtrail.db import normalize_url
from sshtrail.errors import BrokerError
from sshtrail.kafka import ensure_topics
from sshtrail.settings import Settings


def register(commands: Any) -> None:
    parser = commands.add_parser(
        "up",
        help="start the local stack: broker, database, pipeline (Ctrl-C stops it)",
        description="Start everything sshtrail needs on this machine and keep it "
        "running until Ctrl-C or SIGTERM. With no kafka.bootstrap_servers set, the "
        "embedded broker is started; the session store is migrated to the latest "
        "schema. A second run reuses the state in state_dir.",
    )
    parser.set_defaults(handler=run)


def run(_args: argparse.Namespace, settings: Settings) -> int:
    state = settings.state_path.resolve()
    state.mkdir(parents=True, exist_ok=True)
    with stop_on_signals() as stop:
        broker: EmbeddedBroker | None = None
        try:
            if settings.embedded_broker:
                broker = start_broker(
                    settings, settings.broker.host, settings.broker.port, settings.broker_data_dir
                )
                _say("broker", f"embedded, {broker.bootstrap_servers}, data in "
                     f"{settings.broker_data_dir.resolve()}")  # fmt: skip
            else:
                _say("broker", f"external, {settings.kafka.bootstrap_servers}")
            created = ensure_topics(settings)
            topics = f"{settings.kafka.topic} ({settings.kafka.partitions} partitions), "
            topics += f"dead letters in {settings.kafka.dlq_topic}"
            _say("topics", topics + (" (created)" if created else ""))
            migrate.upgrade(settings.database_url)
            shown = normalize_url(settings.database_url).render_as_string(hide_password=True)
            _say("database", f"{shown} at schema {migrate.current_revision(settings.database_url)}")
            _say("state", str(state))
            _say("ready", "press Ctrl-C to stop")
            while not stop.wait(0.5):
                if broker is not None and broker.poll() is not None:
                    raise BrokerError("the embedded broker exited unexpectedly; see "
                                      f"{settings.broker_data_dir / 'broker.log'}")  # fmt: skip
        finally:
            if broker is not None:
                broker.stop()
    _say("stopped", f"on {stop.name}; state kept in {state}")
    return 0


def _say(part: str, what: str) -> None:
    print(f"{part:>9}  {what}", file=sys.stdout, flush=True)
