"""How the commands print: tables that fit the terminal, CSV, JSON; ``--format``."""

from __future__ import annotations

import argparse
import csv
import shutil
import sys
from collections.abc import Sequence

import msgspec


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


def print_listing(rows: Sequence[Sequence[str]], csv_: bool, nothing: str) -> None:
    """A listing (the first row its header): CSV, or a table followed on stderr by
    ``nothing`` (``(no sessions match)``) when it has no rows but the header."""
    if csv_:
        print_csv(rows)
        return
    print_table(rows)
    if len(rows) < 2:
        print(nothing, file=sys.stderr)


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
