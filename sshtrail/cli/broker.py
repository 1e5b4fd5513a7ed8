"""``sshtrail broker``: run the embedded development broker in the foreground."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from sshtrail.broker import EmbeddedBroker
from sshtrail.commandkit.signals import stop_on_signals
from sshtrail.kafka.admin import ensure_topics
from sshtrail.settings import Settings
from sshtrail.statedir import secure


def start_broker(host: str, port: int, data_dir: Path) -> EmbeddedBroker:
    """Start the embedded broker with its log under ``data_dir``."""
    data_dir.mkdir(parents=True, exist_ok=True)
    log = (data_dir / "broker.log").open("ab")
    broker = EmbeddedBroker(host, port, data_dir, log)
    try:
        broker.start()
    finally:
        log.close()  # the child process has its own copy of the descriptor
    return broker


def run(args: argparse.Namespace, settings: Settings) -> int:
    host = args.host or settings.broker.host
    port = args.port or settings.broker.port
    if not 1 <= port <= 65535:
        print(f"sshtrail: error: --port {port} is not a TCP port", file=sys.stderr)
        return 2
    data_dir = args.data_dir or settings.broker_data_dir
    secure(data_dir)
    with stop_on_signals() as stop:
        broker = start_broker(host, port, data_dir)
        try:
            print(
                f"broker listening on {broker.bootstrap_servers} (data in {data_dir})", flush=True
            )
            if not args.no_topics:
                for name in ensure_topics(settings.using_broker(host, port)):
                    print(f"created topic {name}", flush=True)
            print("press Ctrl-C to stop", flush=True)
            while not stop.wait(0.5):
                if broker.poll() is not None:
                    print("sshtrail: error: the broker exited unexpectedly", file=sys.stderr)
                    return 1
        finally:
            status = broker.stop()
    print(f"broker stopped ({stop.name or 'exit'}, status {status})", flush=True)
    return 0
