"""What the auditor's built-in commands are called and take: sessions, show, search,
transfers, verify, export and replay. Declared as :mod:`sshtrail.cli.commands` declares
the others (it lists these too, in ``sshtrail --help``'s order): argument parsers only,
their handlers imported when they run."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from sshtrail.commandkit.arguments import moment, offset, positive, ranged
from sshtrail.commandkit.options import command, flag
from sshtrail.commandkit.output import format_options
from sshtrail.states import FLAG_CHOICES, KINDS, MaskedInput, PolicyMark, SessionStatus


def audit(commands: Any) -> None:
    listing = command(
        commands,
        "sessions",
        "sshtrail.cli.audit:run_sessions",
        help="list recorded sessions, newest first",
        description="List sessions from the store, newest first. IDs are the shortest unique "
        "prefix; any unique prefix works wherever a session id is asked for.",
    )
    _filters(listing)
    listing.add_argument(
        "--policy",
        choices=[m.value for m in PolicyMark],
        help="only sessions where the command policy did at least this: warned (any "
        "decision but accept), reviewed (held a command for approval, or rejected one), "
        "rejected (refused a command); docs/policy.md",
    )
    listing.add_argument(
        "--flag",
        choices=FLAG_CHOICES,
        help="only sessions with this flag, or any flag (any); docs/recording.md, Flags",
    )
    listing.add_argument("--status", choices=[s.value for s in SessionStatus])
    listing.add_argument("--limit", type=positive, default=50, help="at most N (default 50)")
    format_options(listing)
    listing.add_argument(
        "--columns",
        type=_columns,
        metavar="A,B,...",
        help=f"table and CSV columns, in this order (of {','.join(SESSION_COLUMNS)})",
    )

    show = command(
        commands,
        "show",
        "sshtrail.cli.audit:run_show",
        help="one session: metadata, commands, gaps, verification",
    )
    show.add_argument("session", metavar="SID", help="session id or a unique prefix of it")
    flag(show, "--json")

    finder = command(
        commands,
        "search",
        "sshtrail.cli.audit:run_search",
        help="find a substring in commands, output, screens and metadata",
        description="Case-insensitive substring search over what sessions showed: commands "
        "as run, output lines as displayed, the screens of full-screen programs (vim, less, "
        "top ...), session metadata. Hits are grouped per session, oldest first, each with "
        "its offset; the replay command starts at the first. Exits 1 when nothing matches, "
        "as grep does.",
    )
    finder.add_argument("query", metavar="QUERY")
    _filters(finder)
    finder.add_argument("--session", metavar="SID", help="only this session (id or prefix)")
    finder.add_argument(
        "--exit", type=_exit_status, metavar="N", help="only sessions that ended with exit status N"
    )
    finder.add_argument(
        "--kind",
        choices=KINDS,
        help="only commands, output lines, screens of full-screen programs, metadata, or "
        "input given to a command",
    )
    finder.add_argument("--limit", type=positive, default=100, help="at most N hits")
    format_options(finder)

    transfers = command(
        commands,
        "transfers",
        "sshtrail.cli.transfers:run_transfers",
        help="files moved or changed over SFTP and SCP: paths, sizes, SHA-256",
        description="File operations read from SFTP and SCP sessions (also scp in its "
        "default SFTP mode), newest sessions first: uploads and downloads with their size "
        "and the SHA-256 of the bytes that moved (or the byte ranges, when a file did not "
        "move whole and in order), renames, removals, directories, mode and owner changes, "
        "links -- each with the server's answer. --all adds what only looked around (stat, "
        "realpath, directory listings). A session's transfers appear once it has ended and "
        "the store group has read it.",
    )
    _filters(transfers)
    transfers.add_argument(
        "--path",
        metavar="GLOB",
        help="only paths matching this shell pattern (quote it: '/etc/*', '*.sql')",
    )
    transfers.add_argument("--session", metavar="SID", help="only this session (id or prefix)")
    flag(transfers, "--all", "also stat, realpath, listings and the like")
    transfers.add_argument("--limit", type=positive, default=100, help="at most N (default 100)")
    format_options(transfers)


def evidence(commands: Any) -> None:
    verify = command(
        commands,
        "verify",
        "sshtrail.cli.evidence:run_verify",
        help="recompute a session's hash chain and check the gateway's signature",
        description="Check stored sessions against tampering: every chunk must decode, link "
        "to the one before, and the end chunk must carry a valid signature by a trusted "
        "gateway key. Prints ok, gap, unsigned or tampered (with the chunk); exits 0 only "
        "if every session checked is ok.",
    )
    which = verify.add_mutually_exclusive_group(required=True)
    which.add_argument("session", nargs="?", metavar="SID", help="session id or unique prefix")
    flag(which, "--all", "every stored session")
    flag(
        which,
        "--cross-check",
        "every session the search index read, against the store: missing from it, "
        "or ending elsewhere (docs/operations.md, 'Checking the store against the index')",
    )
    verify.add_argument(
        "--trust",
        type=Path,
        action="append",
        metavar="KEYFILE",
        help="a gateway's signing public key (repeatable)",
    )
    flag(verify, "--json")

    export = command(
        commands,
        "export",
        "sshtrail.cli.evidence:run_export",
        help="write a session as asciicast, raw output bytes, or decoded events",
        description="asciicast: asciinema's v2 format (asciinema play / cat); raw: the "
        "output bytes exactly as the operator's terminal got them; json: one decoded "
        "event per line, bytes in base64. With --transfer N: one file uploaded or "
        "downloaded over SFTP or SCP, taken out of the recording.",
    )
    export.add_argument("session", metavar="SID", nargs="?", help="the session (id or prefix)")
    export.add_argument("--format", choices=("asciicast", "raw", "json"))
    export.add_argument(
        "--transfer",
        type=positive,
        metavar="N",
        help="instead: the bytes of file transfer N (sshtrail transfers, column N), as they "
        "moved; needs transfers.content_export = true",
    )
    export.add_argument(
        "-o", "--output", type=Path, metavar="FILE", help="write to FILE instead of stdout"
    )
    flag(export, "--force", "with -o: replace an existing FILE")


def replay(commands: Any) -> None:
    replay = command(
        commands,
        "replay",
        "sshtrail.cli.replay:run_replay",
        help="play a session in this terminal with its original timing",
        description="Play a stored session. Keys: space pause/resume, + faster, - slower, "
        "q quit. Not a terminal: the output is written without delays.",
    )
    replay.add_argument("session", metavar="SID")
    replay.add_argument("--speed", type=_speed, default=1.0, help="playback speed (default 1)")
    replay.add_argument(
        "--idle-limit",
        type=float,
        default=2.0,
        metavar="S",
        help="wait at most S seconds between outputs (default 2)",
    )
    flag(replay, "--raw", "write the output bytes exactly as recorded, without the terminal filter")
    flag(
        replay,
        "--resize",
        "ask the terminal to take the recording's size first (xterm and most others "
        "honour it), when it is smaller",
    )
    replay.add_argument(
        "--from",
        dest="start",
        type=offset,
        default=0.0,
        metavar="HH:MM:SS",
        help="start at this offset into the session",
    )


_speed = ranged(float, 0.01, 1000.0, "a speed between 0.01 and 1000")


_exit_status = ranged(int, 0, 2**32 - 1, "an exit status (0 to 4294967295)")

#: The columns of ``sessions``, in the order shown by default.
SESSION_COLUMNS = (
    "ID",
    "OPERATOR",
    "TARGET",
    "REQUEST",
    "CLIENT",
    "STARTED",
    "DURATION",
    "STATUS",
    "EXIT",
    "CHAIN",
    "MASKED",
    "FLAGS",
)


def _columns(text: str) -> tuple[str, ...]:
    chosen = tuple(name.strip().upper() for name in text.split(",") if name.strip())
    unknown = [name for name in chosen if name not in SESSION_COLUMNS]
    if unknown or not chosen:
        raise argparse.ArgumentTypeError(
            f"unknown column {', '.join(unknown) or '(none given)'}: "
            f"choose from {','.join(SESSION_COLUMNS)}"
        )
    return chosen


def _filters(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--operator", help="only this operator's sessions")
    parser.add_argument("--target", help="only sessions to this target")
    parser.add_argument("--since", type=moment, metavar="2h|ISO", help="started at or after")
    parser.add_argument("--until", type=moment, metavar="2h|ISO", help="started before")
    parser.add_argument(
        "--masked-input",
        choices=[m.value for m in MaskedInput],
        help="only sessions with input withheld from the recording (masked), or only those "
        "where it looks like commands typed blind (suspicious)",
    )
