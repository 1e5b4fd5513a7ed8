"""``sshtrail policy check`` and ``policy test``: a command policy file read as the gateway
reads it, and which of its rules decides a command (docs/policy.md)."""

from __future__ import annotations

import argparse
from pathlib import Path

from sshtrail.commandkit.exits import EXIT_FAILURE
from sshtrail.commandkit.output import print_json, print_table
from sshtrail.commandpolicy import Policy, load_policy
from sshtrail.errors import ConfigError
from sshtrail.settings import Settings
from sshtrail.textsafe import visible

#: What ``policy test`` exits with for a command the rules warn about ...
EXIT_WARNED = 3
#: ... and for one they hold for an auditor's approval.
EXIT_REVIEWED = 4


def run_check(args: argparse.Namespace, settings: Settings) -> int:
    policy = load_policy(_file(args.file, settings))
    rows = [("RULE", "ACTION", "OPERATORS", "TARGETS", "MATCH")]
    for rule in policy.rules:
        rows.append(
            (
                rule.name,
                rule.action,
                ",".join(rule.operators),
                ",".join(rule.targets),
                visible(" | ".join(entry.text for entry in rule.entries)),
            )
        )
    print_table(rows)
    print(f"{len(policy.rules)} rules in {policy.source}: the first that matches decides")
    if policy.moderations:
        tables = [("MODERATION", "OPERATORS", "TARGETS", "MODERATORS", "COUNT", "ON LEAVE", "WAIT")]
        for moderation in policy.moderations:
            tables.append(
                (
                    moderation.name,
                    ",".join(moderation.operators),
                    ",".join(moderation.targets),
                    ",".join(moderation.moderators),
                    str(moderation.count),
                    moderation.on_leave,
                    f"{moderation.wait_s:g} s",
                )
            )
        print()
        print_table(tables)
        print(
            f"{len(policy.moderations)} moderation tables: the first that covers a session "
            "decides (docs/moderation.md)"
        )
    return 0


def run_test(args: argparse.Namespace, settings: Settings) -> int:
    policy: Policy = load_policy(_file(args.file, settings))
    decision = policy.decide(args.operator, args.target, args.command)
    if args.json:
        print_json(
            {
                "action": decision.action,
                "rule": decision.rule.name if decision.rule else None,
                "matched": decision.entry.text if decision.entry else None,
                "message": decision.message or None,
            }
        )
    else:
        print(visible(decision.describe()))
        if decision.message:
            print(f"the operator is told: {visible(decision.message)}")
    exits = {"accept": 0, "reject": EXIT_FAILURE, "warn": EXIT_WARNED, "review": EXIT_REVIEWED}
    return exits[decision.action]


def _file(given: Path | None, settings: Settings) -> Path:
    if given is not None:
        return given
    if not settings.policy.file:
        raise ConfigError("no policy file: give FILE, or set policy.file", key="policy.file")
    return Path(settings.policy.file).expanduser()
