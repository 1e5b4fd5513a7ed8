"""``sshtrail deletions``: the tombstones of deleted sessions, each checked against its
signature (sshtrail/tombstone.py)."""

from __future__ import annotations

import argparse
import getpass

from sqlalchemy import select

from consumer.web import access
from sshtrail import tombstone
from sshtrail.commandkit.exits import EXIT_FAILURE
from sshtrail.commandkit.output import chosen_format, print_json, print_listing
from sshtrail.commandkit.reading import store
from sshtrail.settings import Settings
from sshtrail.tables import DELETIONS
from sshtrail.textsafe import local_time, visible


def run(args: argparse.Namespace, settings: Settings) -> int:
    query = select(DELETIONS).order_by(DELETIONS.c.deleted_at.desc()).limit(args.limit)
    if args.since is not None:
        query = query.where(DELETIONS.c.deleted_at >= args.since)
    with store(settings) as conn:
        rows = [dict(row) for row in conn.execute(query).mappings()]
    access.record_from_cli(settings, getpass.getuser(), "deletions", None, "")
    key = tombstone.public_key(settings)
    checked = [tombstone.check(row, key) for row in rows]
    if chosen_format(args) == "json":
        print_json([tombstone.as_json(row, c) for row, c in zip(rows, checked, strict=True)])
    else:
        table: list[tuple[str, ...]] = [
            ("SESSION", "OPERATOR", "TARGET", "DELETED", "BY", "REASON", "CHAIN", "SIGNATURE")
        ]
        for row, result in zip(rows, checked, strict=True):
            table.append(
                (
                    str(row["session_id"]),
                    visible(row["operator"] or "?"),
                    visible(row["target"] or "?"),
                    local_time(row["deleted_at"]),
                    f"rule {row['rule']}" if row["rule"] else visible(row["deleted_by"]),
                    visible(row["reason"]),
                    row["verdict"],
                    ("ok" + (f" ({result.problem})" if result.problem else ""))
                    if result.ok
                    else result.problem,
                )
            )
        print_listing(table, chosen_format(args) == "csv", "(no deletions)")
    return 0 if all(c.ok for c in checked) else EXIT_FAILURE
