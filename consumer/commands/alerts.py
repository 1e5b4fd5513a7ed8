"""``sshtrail alerts``: the alerts Sigma rules raised; ``alerts rules``: the rules and
their status; ``alerts hunt``: rule files over the stored sessions (docs/alerts.md)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from consumer.alertoutbox import alert_document
from consumer.hunt import HuntFilter, hunt
from sshtrail import queries
from sshtrail.alertqueries import AlertFilter, list_alerts
from sshtrail.commandkit.exits import EXIT_NO_MATCH
from sshtrail.commandkit.output import chosen_format, print_json, print_listing
from sshtrail.commandkit.reading import store
from sshtrail.errors import ConfigError, InvalidError
from sshtrail.settings import Settings
from sshtrail.sigmarules import Rule, RuleSet, RuleStatus, load_rule_file, load_rules
from sshtrail.textsafe import local_time, visible


def run(args: argparse.Namespace, settings: Settings) -> int:
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
    _print_alerts(args, settings, found, "(no alerts)")
    return 0 if found else EXIT_NO_MATCH


def run_hunt(args: argparse.Namespace, settings: Settings) -> int:
    """Rule files over the stored sessions; nothing is written anywhere."""
    rules = _rule_files(args.files)
    found: list[dict[str, Any]] = []
    with store(settings) as conn:
        wanted = HuntFilter(
            operator=args.operator,
            target=args.target,
            session_id=queries.resolve(conn, args.session) if args.session else None,
            since=args.since,
        )
        for hit in hunt(conn, rules, wanted):
            found.append(hit)
            if len(found) >= args.limit:
                print(f"sshtrail: stopped at {args.limit} hits (--limit)", file=sys.stderr)
                break
    found.sort(key=lambda hit: hit["at"])
    _print_alerts(args, settings, found, "(no hits)")
    return 0 if found else EXIT_NO_MATCH


def _rule_files(paths: list[Path]) -> RuleSet:
    """The rules of ``paths``; a file that cannot be used is an error naming it and why
    (the loader's reason, as ``alerts rules`` shows it)."""
    rules: list[Rule] = []
    statuses: list[RuleStatus] = []
    first: dict[str, Path] = {}
    for path in paths:
        rule, status = load_rule_file(path)
        if rule is None:
            raise InvalidError(f"rule file {path} cannot be used: {status.reason}")
        if rule.id in first:
            raise InvalidError(f"rule file {path}: id {rule.id} already used by {first[rule.id]}")
        first[rule.id] = path
        rules.append(rule)
        statuses.append(status)
    return RuleSet(tuple(rules), tuple(statuses))


def _print_alerts(
    args: argparse.Namespace, settings: Settings, found: list[dict[str, Any]], nothing: str
) -> None:
    """Alert rows (stored, or a hunt's) as a table, CSV or the JSON the topic carries."""
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
        print_listing([header, *rows], csv_, nothing)


def run_rules(args: argparse.Namespace, settings: Settings) -> int:
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
                    "logsource": status.logsource or None,
                }
                for status in rules.statuses
            ]
        )
    else:
        header = ("FILE", "STATUS", "LOGSOURCE", "TITLE", "REASON")
        rows = [
            (
                Path(status.path).name,
                status.status,
                status.logsource or "-",
                visible(status.title or "-"),
                visible(status.reason) or "-",
            )
            for status in rules.statuses
        ]
        print_listing([header, *rows], shape == "csv", "(no rule files)")
        active = sum(status.status == "active" for status in rules.statuses)
        print(f"{active} active of {len(rules.statuses)} rule files in {settings.alerts.rules}")
    return 0
