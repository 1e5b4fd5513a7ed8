"""``sshtrail alerts``: the alerts Sigma rules raised; ``alerts rules``: the rules and
their status (docs/alerts.md)."""

from __future__ import annotations

import argparse
from pathlib import Path

from consumer.alertoutbox import alert_document
from sshtrail import queries
from sshtrail.alertqueries import AlertFilter, list_alerts
from sshtrail.commandkit.exits import EXIT_NO_MATCH
from sshtrail.commandkit.output import chosen_format, print_json, print_listing
from sshtrail.commandkit.reading import store
from sshtrail.errors import ConfigError
from sshtrail.settings import Settings
from sshtrail.sigmarules import load_rules
from sshtrail.textsafe import local_time, visible


def run(args: argparse.Namespace, settings: Settings) -> int:
    if args.what == "rules":
        return _rules(args, settings)
    with store(settings) as conn:
        wanted = AlertFilter(
            since=args.since,
            level=args.level.lower() if args.level else None,
            rule=args.rule or None,
            operator=args.operator or None,
            target=args.target or None,
            session_id=queries.resolve(conn, args.session) if args.session else None,
            limit=args.limit,
        )
        found = list_alerts(conn, wanted)
    shape = chosen_format(args)
    console = settings.alerts.console_url.rstrip("/")
    if shape == "json":
        print_json([alert_document(row, console) for row in found])
    else:
        csv_ = shape == "csv"
        header = ("AT", "LEVEL", "RULE", "OPERATOR", "TARGET", "SESSION", "COMMAND")
        rows = [
            (
                row["at"].isoformat() if csv_ else local_time(row["at"]),
                row["level"],
                visible(row["title"]),
                visible(row["operator"] or "-"),
                visible(row["target"] or "-"),
                str(row["session_id"]) if csv_ else row["session_id"].hex[:12],
                visible(row["command"]),
            )
            for row in found
        ]
        print_listing([header, *rows], csv_, "(no alerts)")
    return 0 if found else EXIT_NO_MATCH


def _rules(args: argparse.Namespace, settings: Settings) -> int:
    if not settings.alerts.rules:
        raise ConfigError("no rules folder: set alerts.rules", key="alerts.rules")
    rules = load_rules(Path(settings.alerts.rules).expanduser())
    shape = chosen_format(args)
    if shape == "json":
        print_json(
            [
                {
                    "file": status.path,
                    "id": status.rule_id,
                    "title": status.title,
                    "status": status.status,
                    "reason": status.reason,
                }
                for status in rules.statuses
            ]
        )
    else:
        header = ("FILE", "STATUS", "TITLE", "REASON")
        rows = [
            (
                Path(status.path).name,
                status.status,
                visible(status.title or "-"),
                visible(status.reason) or "-",
            )
            for status in rules.statuses
        ]
        print_listing([header, *rows], shape == "csv", "(no rule files)")
        active = sum(status.status == "active" for status in rules.statuses)
        print(f"{active} active of {len(rules.statuses)} rule files in {settings.alerts.rules}")
    return 0
