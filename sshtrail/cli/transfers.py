"""``sshtrail transfers``, and the file operations ``show`` and ``search`` print.

Paths came from the operator's SFTP or SCP client: every one goes through
:func:`~sshtrail.textsafe.visible` before it reaches a terminal.
"""

from __future__ import annotations

import argparse
import datetime as dt
import uuid
from typing import Any

from sqlalchemy.engine import Connection

from sshtrail import queries
from sshtrail.cli.output import chosen_format, print_json, print_listing
from sshtrail.cli.reading import store
from sshtrail.cli.timespec import clock
from sshtrail.search import Hit
from sshtrail.settings import Settings
from sshtrail.states import MaskedInput
from sshtrail.textsafe import local_time, visible

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
        rows = queries.list_transfers(conn, wanted)
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
        when = when_answered(row)
        table.append(
            (
                str(row["id"]),
                str(row["session_id"]) if csv_ else shorts[row["session_id"]],
                when.isoformat() if csv_ and when else local_time(when),
                visible(row["operator"] or "?"),
                visible(row["target"] or "?"),
                row["op"],
                visible(_paths(row)),
                _amount(row),
                (row["sha256"] or "") if csv_ else (row["sha256"] or "-")[:16],
                visible(row["status"]),
            )
        )
    print_listing(table, csv_, "(no transfers match)")
    return 0


def transfer_filter(
    args: argparse.Namespace, session_id: uuid.UUID | None, **more: Any
) -> queries.TransferFilter:
    """The session filters ``transfers`` and ``search`` share, as given, and ``more``."""
    return queries.TransferFilter(
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
    wanted = queries.TransferFilter(session_id=session_id, everything=True, limit=limit)
    return queries.list_transfers(conn, wanted)


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
            f"{visible(_paths(operation))}{moved}{sha}{answer}"
        )
    if len(found) > SHOWN_IN_SESSION:
        lines.append(f"{'':>12}  ... sshtrail transfers --all --session {row['id'].hex}")
    return lines


def transfer_hits(settings: Settings, wanted: queries.TransferFilter) -> list[Hit]:
    """Operations whose path holds ``wanted.containing``, as search hits."""
    with store(settings) as conn:
        rows = queries.list_transfers(conn, wanted)
    return hits_of(rows)


def merged(hits: list[Hit], more: list[Hit], limit: int) -> list[Hit]:
    """Search hits from the index and from the transfers, in time order (then session,
    offset), the first ``limit``."""
    together = sorted(hits + more, key=lambda hit: (hit.at or _EPOCH, str(hit.session_id), hit.t))
    return together[:limit]


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def hits_of(rows: list[dict[str, Any]]) -> list[Hit]:
    """Rows of :func:`~sshtrail.queries.list_transfers` as search hits."""
    return [
        Hit(
            row["session_id"],
            "transfer",
            row["t"],
            when_answered(row),
            row["operator"],
            row["target"],
            f"{row['op']} {_paths(row)}",
        )
        for row in rows
    ]


def transfer_json(row: dict[str, Any]) -> dict[str, Any]:
    when = when_answered(row)
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


def when_answered(row: dict[str, Any]) -> dt.datetime | None:
    started: dt.datetime | None = row["started_at"]
    return started + dt.timedelta(microseconds=row["t"] // 1000) if started else None


def _paths(row: dict[str, Any]) -> str:
    arrow = " -> " if row["op"] != "symlink" else " -> (link to) "
    return str(row["path"]) + (arrow + row["path2"] if row["path2"] else "")


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
