"""``sshtrail reviews`` and ``sshtrail review ID approve|deny``: the four-eyes reviews on
the control topic, and answering one (docs/policy.md)."""

from __future__ import annotations

import argparse
import datetime as dt
import getpass
import sys

from consumer.reviews import ReviewItem, answer, find, read_reviews
from consumer.web import access
from sshtrail import control
from sshtrail.commandkit.exits import EXIT_NOT_DONE
from sshtrail.commandkit.output import chosen_format, print_json, print_listing
from sshtrail.settings import Settings
from sshtrail.textsafe import visible


def run_list(args: argparse.Namespace, settings: Settings) -> int:
    now = control.now_ns()
    found = [
        item for item in read_reviews(settings, args.hours * 3600) if args.all or item.waiting(now)
    ]
    access.record_from_cli(
        settings, getpass.getuser(), "reviews", None, "all" if args.all else "waiting"
    )
    form = chosen_format(args)
    if form == "json":
        print_json([item.as_json(now) for item in found])
    else:
        rows: list[tuple[str, ...]] = [
            ("ID", "STATUS", "ASKED", "OPERATOR", "TARGET", "RULE", "COMMAND", "SESSION")
        ]
        rows += [_row(item, now) for item in found]
        print_listing(rows, form == "csv", "(no reviews waiting)" if not args.all else "(none)")
    return 0 if found else EXIT_NOT_DONE


def _row(item: ReviewItem, now: int) -> tuple[str, ...]:
    request = item.request
    status: str = item.status(now)
    if status == "waiting":
        status = f"waiting ({item.seconds_left(now):.0f} s left)"
    asked = dt.datetime.fromtimestamp(request.at / 1e9, dt.UTC).strftime("%Y-%m-%d %H:%M:%S")
    return (
        item.id[:8],
        status,
        asked,
        visible(request.operator),
        visible(request.target),
        visible(request.rule),
        visible(request.command),
        request.session[:8],
    )


def run_answer(args: argparse.Namespace, settings: Settings) -> int:
    item = find(read_reviews(settings), args.review)
    auditor = str(args.as_ or getpass.getuser())
    approve = args.answer == "approve"
    access.record_from_cli(
        settings,
        auditor,
        "approve" if approve else "deny",
        item.session_id,
        f"review {item.id[:8]} of {item.request.command[:200]!r}: {args.reason}",
    )
    request = item.request
    print(  # the whole command, whatever a listing cut: this is what is answered
        f"review {item.id[:8]}: {visible(request.operator)} on {visible(request.target)}, "
        f"rule {visible(request.rule)}:\n  {visible(request.command)}",
        flush=True,
    )
    answered = answer(settings, item, approve, auditor, args.reason, wait_s=args.wait)
    if answered.outcome in ("approved", "denied"):
        print(f"review {item.id[:8]} {visible(answered.detail)} (gateway {item.request.gateway})")
        return 0
    why = answered.detail if answered.outcome is None else f"refused: {answered.detail}"
    print(f"sshtrail: review {item.id[:8]}: {visible(why)}", file=sys.stderr)
    return EXIT_NOT_DONE
