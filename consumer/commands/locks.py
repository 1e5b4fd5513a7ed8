"""``sshtrail locks``: the operators locked now, from the control topic, as the gateways
decide (:mod:`consumer.locks`)."""

from __future__ import annotations

import argparse
import getpass

from consumer.locks import LockItem, read_locks
from consumer.web import access
from sshtrail.commandkit.exits import EXIT_NOT_DONE
from sshtrail.commandkit.output import chosen_format, print_json, print_listing
from sshtrail.settings import Settings
from sshtrail.textsafe import visible


def run(args: argparse.Namespace, settings: Settings) -> int:
    found = read_locks(settings, unlocked_too=args.all)
    access.record_from_cli(
        settings, getpass.getuser(), "locks", None, "all" if args.all else "locked"
    )
    form = chosen_format(args)
    if form == "json":
        print_json([item.as_json() for item in found])
    else:
        rows: list[tuple[str, ...]] = [("OPERATOR", "STATUS", "BY", "AT", "REASON")]
        rows += [_row(item) for item in found]
        print_listing(rows, form == "csv", "(no operator is locked)" if not args.all else "(none)")
    return 0 if found else EXIT_NOT_DONE


def _row(item: LockItem) -> tuple[str, ...]:
    request = item.request
    status = "locked" if item.locked else "unlocked"
    if item.end_sessions:
        status += " (sessions ended)"
    return (
        visible(request.operator),
        status,
        visible(request.auditor),
        item.at.strftime("%Y-%m-%d %H:%M:%S"),
        visible(request.reason),
    )
