"""``sshtrail alert``: a member of the group that raises Sigma alerts (docs/alerts.md)."""

from __future__ import annotations

import argparse
from pathlib import Path

from consumer.alerter import AlertWriter
from consumer.alertoutbox import AlertOutbox
from consumer.alertrules import RulesInForce
from consumer.metrics import ConsumerMetrics
from consumer.service import Stopped, open_database, run_member, with_instance_id
from sshtrail.settings import Settings


def run(args: argparse.Namespace, settings: Settings) -> int:
    settings = with_instance_id(settings, args.instance_id)
    try:
        engine = open_database(settings, wait=True)
    except Stopped as stopped:
        print(f"alert: {stopped}", flush=True)
        return 0
    group = args.group or settings.consumer.alert_group
    folder = Path(settings.alerts.rules).expanduser() if settings.alerts.rules else None
    rules = RulesInForce(folder)
    active = len(rules.current().rules)
    print(f"alert: {active} active Sigma rules from {folder or '(alerts.rules not set)'}")
    outbox = AlertOutbox(settings, engine)
    metrics = ConsumerMetrics(group)
    writer = AlertWriter(engine, rules, metrics.registry, raised=outbox.wake)
    outbox.start()
    try:
        return run_member(settings, group, writer, args.metrics_port, "alert", metrics=metrics)
    finally:
        outbox.stop()
        engine.dispose()
