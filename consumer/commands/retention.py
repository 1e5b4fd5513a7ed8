"""``sshtrail retention show`` and ``retention plan``: what the rules keep and what they
would delete (sshtrail/retention.py); nothing is deleted here."""

from __future__ import annotations

import argparse
import datetime as dt
import getpass

from consumer.web import access
from sshtrail import retention
from sshtrail.commandkit.output import chosen_format, print_json, print_listing
from sshtrail.commandkit.reading import store
from sshtrail.settings import Settings
from sshtrail.textsafe import local_time, visible


def run_show(args: argparse.Namespace, settings: Settings) -> int:
    at = args.at or dt.datetime.now(dt.UTC)
    rules = retention.rules(settings)
    with store(settings) as conn:
        found = retention.coverage(conn, rules, at)
    access.record_from_cli(settings, getpass.getuser(), "retention", None, "show")
    if chosen_format(args) == "json":
        print_json([_json(entry) for entry in found])
        return 0
    rows: list[tuple[str, ...]] = [
        ("RULE", "KEEP", "COVERS", "SESSIONS", "BYTES", "DUE", "OVERDUE", "HELD", "NEXT DUE")
    ]
    for entry in found:
        rule = entry.rule
        rows.append(
            (
                rule.name if rule else "(no rule: kept forever)",
                str(rule.keep) if rule else "-",
                _covers(rule),
                str(entry.sessions),
                str(entry.bytes),
                str(entry.due),
                str(entry.overdue),
                str(entry.held),
                local_time(entry.next_due) if entry.next_due else "-",
            )
        )
    print_listing(rows, chosen_format(args) == "csv", "(no sessions)")
    return 0


def run_plan(args: argparse.Namespace, settings: Settings) -> int:
    at = args.at or dt.datetime.now(dt.UTC)
    with store(settings) as conn:
        due = retention.plan(conn, retention.rules(settings), at)
    access.record_from_cli(settings, getpass.getuser(), "retention", None, f"plan at {at}")
    if chosen_format(args) == "json":
        print_json(
            [
                {
                    "session": str(item.session["id"]),
                    "operator": item.session["operator"],
                    "target": item.session["target"],
                    "ended_at": item.ended.isoformat(),
                    "rule": item.rule.name,
                    "due_at": item.due_at.isoformat(),
                    "overdue": item.overdue(at),
                    "held_by": item.held_by,
                }
                for item in due
            ]
        )
        return 0
    rows: list[tuple[str, ...]] = [("SESSION", "OPERATOR", "TARGET", "ENDED", "RULE", "DUE", "")]
    for item in due:
        state = f"held ({', '.join(h[:8] for h in item.held_by)})" if item.held_by else ""
        state = state or ("overdue" if item.overdue(at) else "")
        rows.append(
            (
                str(item.session["id"]),
                visible(item.session["operator"] or "?"),
                visible(item.session["target"] or "?"),
                local_time(item.ended),
                item.rule.name,
                local_time(item.due_at),
                state,
            )
        )
    print_listing(rows, chosen_format(args) == "csv", f"(nothing due at {local_time(at)})")
    return 0


def _covers(rule: retention.Rule | None) -> str:
    if rule is None:
        return "-"
    return f"{','.join(rule.scope.operators)}@{','.join(rule.scope.targets)}"


def _json(entry: retention.Coverage) -> dict[str, object]:
    rule = entry.rule
    return {
        "rule": rule.name if rule else None,
        "keep_s": rule.keep.total_seconds() if rule else None,
        "delete_after_s": rule.delete_after.total_seconds() if rule and rule.delete_after else None,
        "operators": list(rule.scope.operators) if rule else None,
        "targets": list(rule.scope.targets) if rule else None,
        "sessions": entry.sessions,
        "bytes": entry.bytes,
        "due": entry.due,
        "overdue": entry.overdue,
        "held": entry.held,
        "next_due": entry.next_due.isoformat() if entry.next_due else None,
    }
