"""``sshtrail lag-exporter``: every group's lag and status served to Prometheus."""

from __future__ import annotations

import argparse

from consumer.lag import (
    gateway_urls,
)
from consumer.lagexporter import run_exporter
from sshtrail.commandkit.signals import stop_on_signals
from sshtrail.settings import Settings


def run(args: argparse.Namespace, settings: Settings) -> int:
    groups = args.group or [settings.consumer.store_group, settings.consumer.index_group]
    with stop_on_signals() as stop:
        run_exporter(
            settings,
            groups,
            gateways=gateway_urls(settings, args.gateway_metrics),
            listen=args.listen,
            port=args.port,
            interval_s=args.interval,
            stopped=stop.wait,
        )
    print(f"lag-exporter: stopped ({stop.name or 'exit'})", flush=True)
    return 0
