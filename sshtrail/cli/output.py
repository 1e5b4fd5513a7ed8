"""What the auditor commands share: a connection to the store, JSON on stdout."""

from __future__ import annotations

import argparse
import csv
import shutil
import sys
from collections.abc import Sequence
from typing import Any

import msgspec
from sqlalchemy import Engine
from sqlalchemy.exc import OperationalError, ProgrammingError

from sshtrail import queries
from sshtrail.db import existing_engine
from sshtrail.errors import DatabaseError, InvalidError
from sshtrail.settings import Settings


class store:
    """A connection to the store; a database that cannot be read is a clear error."""

    def __init__(self, settings: Settings) -> None:
        self._engine: Engine = existing_engine(settings.database_url, "store")
        self._url = settings.database_url

    def __enter__(self) -> Any:
        try:
            self._conn = self._engine.connect()
        except OperationalError as exc:
            self._engine.dispose()
            raise DatabaseError(f"cannot open the store: {str(exc.orig).strip()}") from None
        return self._conn

    def __exit__(self, *exc: object) -> None:
        self._conn.close()
        self._engine.dispose()
        if isinstance(exc[1], OperationalError | ProgrammingError):
            raise DatabaseError(
                f"cannot read the store ({str(exc[1].orig).strip()}); "
                "is it migrated? sshtrail db upgrade"
            ) from None


def print_json(document: object) -> None:
    sys.stdout.write(msgspec.json.encode(document).decode() + "\n")


def format_options(parser: argparse.ArgumentParser, csv_rows: str = "") -> None:
    """``--format table|json|csv`` and ``--json`` (its shorthand) for a listing; read
    the choice with :func:`chosen_format`. ``csv_rows`` says what a CSV row is."""
    parser.add_argument(
        "--format",
        choices=("table", "json", "csv"),
        default="table",
        help="table (default; fits the terminal), json (docs/operations.md) or csv (every "
        f"character, for spreadsheets{'; ' + csv_rows if csv_rows else ''})",
    )
    parser.add_argument("--json", action="store_true", help="the same as --format json")


def chosen_format(args: argparse.Namespace) -> str:
    return "json" if args.json else str(args.format)


def print_csv(rows: Sequence[Sequence[str]]) -> None:
    """Rows (the first one a header) as CSV (RFC 4180 quoting), every character kept."""
    writer = csv.writer(sys.stdout, lineterminator="\r\n")
    writer.writerows(rows)


def print_table(rows: Sequence[Sequence[str]], width: int | None = None) -> None:
    """Rows (the first one a header) in columns as wide as their widest cell. On a
    terminal (or given ``width``) the widest columns but the first are cut, with ``…``,
    until the table fits, as ``ps`` does; a pipe gets every character."""
    if width is None and sys.stdout.isatty():
        width = shutil.get_terminal_size().columns
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    if width is not None:
        widths = _fitted(widths, [len(h) for h in rows[0]], width)
    for row in rows:
        cells = (_cut(cell, w).ljust(w) for cell, w in zip(row, widths, strict=True))
        print("  ".join(cells).rstrip())


def _fitted(widths: list[int], least: list[int], width: int) -> list[int]:
    """Column widths that fit ``width`` (with two spaces between): the widest column
    loses a character at a time, down to five characters (a header's first letters
    still say which it is). The first column -- the id a reader types back -- is
    never cut."""
    widths = list(widths)
    floor = [widths[0], *(min(n, 5) for n in least[1:])]
    while sum(widths) + 2 * (len(widths) - 1) > width:
        cuttable = [i for i, w in enumerate(widths) if w > floor[i]]
        if not cuttable:
            break
        widest = max(cuttable, key=lambda i: widths[i])
        widths[widest] -= 1
    return widths


def _cut(cell: str, width: int) -> str:
    return cell if len(cell) <= width else cell[: width - 1] + "…"


def stored_session(settings: Settings, prefix: str) -> list[tuple[int, bytes]]:
    """The stored chunks of the session ``prefix`` names; an error if it has none."""
    with store(settings) as conn:
        session_id = queries.resolve(conn, prefix)
        stored = queries.stored_chunks(conn, session_id)
    if not stored:
        raise InvalidError(f"session {session_id} has no stored chunks")
    return stored
