"""``sshtrail hold add | list | release``: legal holds (sshtrail/holds.py)."""

from __future__ import annotations

import argparse
import datetime as dt
import getpass

from consumer.service import open_database
from consumer.web import access
from sshtrail import holds, queries
from sshtrail.commandkit.output import chosen_format, print_json, print_listing
from sshtrail.commandkit.reading import store
from sshtrail.settings import Settings
from sshtrail.textsafe import local_time, visible


def run_add(args: argparse.Namespace, settings: Settings) -> int:
    who = str(args.as_ or getpass.getuser())
    engine = open_database(settings)
    try:
        with engine.begin() as conn:
            session_id = queries.resolve(conn, args.session) if args.session else None
            hold_id = holds.place(
                conn,
                by=who,
                reason=args.reason,
                case=args.case,
                at=dt.datetime.now(dt.UTC),
                session_id=session_id,
                operator=args.operator,
                target=args.target,
                since=args.since,
                until=args.until,
            )
    finally:
        engine.dispose()
    access.record_from_cli(
        settings, who, "hold", session_id, f"{hold_id} {args.case}: {args.reason}"
    )
    print(f"hold {hold_id} placed (case {visible(args.case)})")
    return 0


def run_release(args: argparse.Namespace, settings: Settings) -> int:
    who = str(args.as_ or getpass.getuser())
    engine = open_database(settings)
    try:
        with engine.begin() as conn:
            holds.release(
                conn, args.hold_id, by=who, reason=args.reason, at=dt.datetime.now(dt.UTC)
            )
    finally:
        engine.dispose()
    access.record_from_cli(settings, who, "hold-release", None, f"{args.hold_id}: {args.reason}")
    print(f"hold {args.hold_id} released")
    return 0


def run_list(args: argparse.Namespace, settings: Settings) -> int:
    with store(settings) as conn:
        found = holds.listed(conn, released_too=args.all)
    access.record_from_cli(settings, getpass.getuser(), "hold", None, "list")
    if chosen_format(args) == "json":
        print_json([holds.as_json(hold) for hold in found])
        return 0
    rows: list[tuple[str, ...]] = [("ID", "HOLDS", "CASE", "BY", "AT", "REASON", "RELEASED")]
    for hold in found:
        released = ""
        if hold["released_at"] is not None:
            released = (
                f"{local_time(hold['released_at'])} by {visible(hold['released_by'] or '?')}: "
                f"{visible(hold['release_reason'] or '')}"
            )
        rows.append(
            (
                hold["id"],
                holds.describe(hold),
                visible(hold["case"]),
                visible(hold["placed_by"]),
                local_time(hold["placed_at"]),
                visible(hold["reason"]),
                released,
            )
        )
    print_listing(rows, chosen_format(args) == "csv", "(no holds)")
    return 0
