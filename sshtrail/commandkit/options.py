"""Argument blocks several commands declare alike: the command itself with its handler,
an on/off flag, ``--limit``, ``--since``, a request's ``--reason`` and its requester's
``--as``.

Each is a small function over an :class:`argparse.ArgumentParser`, so a command's
parser function reads as the list of what it takes, and an option that means the
same thing in two commands is declared once: same name, type, bounds and wording.
"""

from __future__ import annotations

import argparse
from typing import Any

from sshtrail.commandkit.arguments import moment, ranged

#: ``--limit``'s bounds: enough for any listing, small enough to refuse a typo's 10**12.
_LIMIT = ranged(int, 1, 1_000_000, "1 to 1000000")


def command(
    commands: Any, name: str, handler: str | None = None, **texts: str
) -> argparse.ArgumentParser:
    """Command ``name`` (``help``, ``description``: its texts) run by ``handler``
    (``"module:function"``, imported only when it runs; None: its actions have theirs)."""
    parser: argparse.ArgumentParser = commands.add_parser(name, **texts)
    if handler is not None:
        parser.set_defaults(handler=handler)
    return parser


def flag(parser: Any, name: str, help: str | None = None) -> None:
    """An option that is off unless given, on a parser or a group of its options."""
    parser.add_argument(name, action="store_true", help=help)


def limit(parser: argparse.ArgumentParser, default: int, help: str = "at most") -> None:
    """``--limit N``: at most N rows (1 to 1000000)."""
    parser.add_argument("--limit", type=_LIMIT, default=default, help=help)


def since(parser: argparse.ArgumentParser, help: str, metavar: str | None = None) -> None:
    """``--since``: a moment, ``2h`` ago or an ISO time."""
    parser.add_argument("--since", type=moment, metavar=metavar, help=help)


def reason(parser: argparse.ArgumentParser, help: str | None = None) -> None:
    """``--reason TEXT``, required: why a request is made, kept in the record."""
    parser.add_argument("--reason", required=True, metavar="TEXT", type=_reason, help=help)


def requester(parser: argparse.ArgumentParser) -> None:
    """``--as NAME``: who asks, in the record (read as ``args.as_``)."""
    parser.add_argument(
        "--as",
        dest="as_",
        metavar="NAME",
        help="the requester's name in the record (default: your user name)",
    )


def why_and_who(parser: argparse.ArgumentParser, help: str | None = None) -> None:
    """``--reason`` then ``--as``: what a recorded request says of itself."""
    reason(parser, help)
    requester(parser)


def _reason(text: str) -> str:
    if not text.strip() or len(text) > 500:
        raise argparse.ArgumentTypeError("give a reason of 1 to 500 characters")
    return text.strip()
