"""``sshtrail access-log``: the web console's access log on the terminal."""

from __future__ import annotations

import argparse

from consumer.web import access
from sshtrail import queries
from sshtrail.cli.output import chosen_format, print_json, print_listing
from sshtrail.cli.reading import store
from sshtrail.errors import InvalidError
from sshtrail.settings import Settings
from sshtrail.textsafe import local_time, visible


def run(args: argparse.Namespace, settings: Settings) -> int:
    if args.action is not None and args.action not in access.ACTIONS:
        raise InvalidError(f"--action: one of {', '.join(access.ACTIONS)}")
    with store(settings) as conn:
        session_id = queries.resolve(conn, args.session) if args.session else None
        found = access.entries(
            conn,
            auditor=args.auditor,
            session_id=session_id,
            action=args.action,
            since=args.since,
            limit=args.limit,
        )
    shape = chosen_format(args)
    if shape == "json":
        print_json([access.as_json(entry) for entry in found])
        return 0
    header = ("AT", "AUDITOR", "ACTION", "SESSION", "ADDRESS", "DETAIL")
    csv_ = shape == "csv"
    rows = [
        (
            entry.at.isoformat() if csv_ else local_time(entry.at),
            visible(entry.auditor),
            entry.action,
            (str(entry.session_id) if csv_ else entry.session_id.hex[:12])
            if entry.session_id
            else "-",
            visible(entry.address),
            visible(entry.detail) or "-",
        )
        for entry in found
    ]
    print_listing([header, *rows], csv_, "(nothing recorded)")
    return 0
