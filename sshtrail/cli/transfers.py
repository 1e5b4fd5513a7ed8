"""``sshtrail transfers``, and the file operations ``show`` and ``search`` print.

Paths came from the operator's SFTP or SCP client: every one goes through
:func:`~sshtrail.textsafe.visible` before it reaches a terminal.
"""

from __future__ import annotations

import argparse
import uuid
from typing import Any

from sqlalchemy.engine import Connection

from sshtrail import describe, queries, transferqueries
from sshtrail.commandkit.output import chosen_format, print_json, print_listing
from sshtrail.commandkit.reading import store
from sshtrail.settings import Settings
from sshtrail.states import MaskedInput
from sshtrail.textsafe import local_time, visible
from sshtrail.timespec import clock

#: Operations ``show`` prints before pointing at ``sshtrail transfers``.
SHOWN_IN_SESSION = 200
#: Operations ``show --json`` lists at the most.
SHOWN_IN_JSON = 10_000
#: Why a session's transfers are not listed (``sessions.transfers``).
_NOT_READ = {
    "pending": "not read yet: the store group reads them after the session ends",
    "failed": "read up to a problem",
}


def run_transfers(args: argparse.Namespace, settings: Settings) -> int:
    with store(settings) as conn:
        session_id = queries.resolve(conn, args.session) if args.session else None
        wanted = transfer_filter(
            args, session_id, path=args.path, everything=args.all, limit=args.limit
        )
        rows = transferqueries.list_transfers(conn, wanted)
        shorts = queries.short_ids(conn, sorted({row["session_id"] for row in rows}))
    shape = chosen_format(args)
    if shape == "json":
        print_json([transfer_json(row) for row in rows])
        return 0
    csv_ = shape == "csv"
    table = [
        ("N", "SESSION", "WHEN", "OPERATOR", "TARGET", "OP", "PATH", "BYTES", "SHA256", "STATUS")
    ]
    for row in rows:
        when = describe.when_answered(row)
        table.append(
            (
                str(row["id"]),
                str(row["session_id"]) if csv_ else shorts[row["session_id"]],
                when.isoformat() if csv_ and when else local_time(when),
                visible(row["operator"] or "?"),
                visible(row["target"] or "?"),
                row["op"],
                visible(describe.transfer_paths(row)),
                _amount(row),
                (row["sha256"] or "") if csv_ else (row["sha256"] or "-")[:16],
                visible(row["status"]),
            )
        )
    print_listing(table, csv_, "(no transfers match)")
    return 0


def transfer_filter(
    args: argparse.Namespace, session_id: uuid.UUID | None, **more: Any
) -> transferqueries.TransferFilter:
    """The session filters ``transfers`` and ``search`` share, as given, and ``more``."""
    return transferqueries.TransferFilter(
        operator=args.operator,
        target=args.target,
        since=args.since,
        until=args.until,
        session_id=session_id,
        masked_input=MaskedInput(args.masked_input) if args.masked_input else None,
        **more,
    )


def of_session(conn: Connection, session_id: uuid.UUID, *, whole: bool) -> list[dict[str, Any]]:
    """A session's operations for ``show``: all its JSON lists (``whole``), or one
    more than its text prints, to tell that there are more."""
    limit = SHOWN_IN_JSON if whole else SHOWN_IN_SESSION + 1
    wanted = transferqueries.TransferFilter(session_id=session_id, everything=True, limit=limit)
    return transferqueries.list_transfers(conn, wanted)


def session_lines(row: dict[str, Any], found: list[dict[str, Any]]) -> list[str]:
    """``show``'s lines about a session's file operations ``found`` (:func:`of_session`);
    none for a session that is not SFTP or SCP."""
    state = row.get("transfers")
    if state is None:
        return []
    shown = len(found) if len(found) <= SHOWN_IN_SESSION else f"more than {SHOWN_IN_SESSION}"
    heading = str(shown)
    if state in _NOT_READ:
        heading = _NOT_READ[state]
        if row.get("transfers_error"):
            heading += f": {row['transfers_error']}"
    lines = [f"{'transfers':>12}  {visible(heading)}"]
    for operation in found[:SHOWN_IN_SESSION]:
        sha = f"  sha256 {operation['sha256']}" if operation["sha256"] else ""
        moved = f"  {_amount(operation)}" if operation["bytes"] or operation["size"] else ""
        answer = "" if operation["status"] == "ok" else f"  ({visible(operation['status'])})"
        lines.append(
            f"{clock(operation['t'] / 1e9):>12}  {operation['op']:<9} "
            f"{visible(describe.transfer_paths(operation))}{moved}{sha}{answer}"
        )
    if len(found) > SHOWN_IN_SESSION:
        lines.append(f"{'':>12}  ... sshtrail transfers --all --session {row['id'].hex}")
    return lines


def transfer_json(row: dict[str, Any]) -> dict[str, Any]:
    when = describe.when_answered(row)
    document = {
        "id": row["id"],
        "session": str(row["session_id"]),
        "index": row["idx"],
        "t": row["t"] / 1e9,
        "at": when.isoformat() if when else None,
        "operator": row["operator"],
        "target": row["target"],
    }
    for key in ("protocol", "op", "path", "path2", "status", "bytes", "size", "sha256"):
        document[key] = row[key]
    document["ranges"] = _ranges(row["ranges"])
    document["detail"] = row["detail"]
    return document


def _amount(row: dict[str, Any]) -> str:
    if row["size"] is not None:
        return f"{row['size']} (whole)"
    if row["bytes"]:
        return f"{row['bytes']} (part)"
    return "-"


def _ranges(text: str | None) -> list[list[int]] | None:
    if not text:
        return None
    return [[int(edge) for edge in span.split("-")] for span in text.split(",")]
