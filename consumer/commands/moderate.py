"""``sshtrail moderate``: the moderated sessions waiting for a moderator (docs/moderation.md)."""

from __future__ import annotations

import argparse
import datetime as dt
import getpass

from consumer.moderation import ModerationItem, read_moderations
from consumer.web import access
from sshtrail import control
from sshtrail.commandkit.exits import EXIT_NOT_DONE
from sshtrail.commandkit.output import chosen_format, print_json, print_listing
from sshtrail.settings import Settings
from sshtrail.textsafe import visible


def run(args: argparse.Namespace, settings: Settings) -> int:
    now = control.now_ns()
    found = [
        item
        for item in read_moderations(settings, args.hours * 3600)
        if args.all or item.needs_moderator(now)
    ]
    access.record_from_cli(
        settings, getpass.getuser(), "moderation", None, "all" if args.all else "waiting"
    )
    form = chosen_format(args)
    if form == "json":
        print_json([item.as_json(now) for item in found])
    else:
        rows: list[tuple[str, ...]] = [
            ("SESSION", "STATUS", "SINCE", "OPERATOR", "TARGET", "RULE", "PRESENT", "GATEWAY")
        ]
        rows += [_row(item, now) for item in found]
        empty = "(no moderated session waits for a moderator)" if not args.all else "(none)"
        print_listing(rows, form == "csv", empty)
    return 0 if found else EXIT_NOT_DONE


def _row(item: ModerationItem, now: int) -> tuple[str, ...]:
    state = item.state
    status: str = item.status(now)
    left = item.seconds_left(now)
    if left is not None and status == "waiting":
        status = f"waiting ({left:.0f} s left)"
    since = dt.datetime.fromtimestamp(state.at / 1e9, dt.UTC).strftime("%Y-%m-%d %H:%M:%S")
    present = f"{len(state.present)}/{state.needed}"
    if state.present:
        present += f" ({', '.join(state.present)})"
    return (
        state.session,
        status,
        since,
        visible(state.operator),
        visible(state.target),
        visible(state.rule),
        visible(present),
        visible(state.gateway),
    )
