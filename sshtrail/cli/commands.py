"""What each built-in command is called and takes: the argument parsers, nothing else.

Declared apart from what the commands do, so that building the parser loads
neither SQLAlchemy, Alembic, asyncssh nor librdkafka: ``sshtrail --help``
answers at once, and a command imports only what it runs (its ``handler`` is
``"module:function"``, imported by :func:`sshtrail.cli.main.main` when it runs;
docs/performance.md, "CLI start-up"). producer/ and consumer/ declare theirs in
``producer.commands`` and ``consumer.commands``.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from sshtrail.commandkit.arguments import moment, offset, positive, ranged
from sshtrail.commandkit.output import format_options
from sshtrail.states import FLAG_CHOICES, KINDS, MaskedInput, PolicyMark, SessionStatus


def register(commands: Any) -> None:
    """Every built-in command, in the order ``sshtrail --help`` lists them."""
    for declare in (
        _up,
        _broker,
        _db,
        _config,
        _audit,
        _evidence,
        _replay,
        _escrow,
        _topics,
        _policy,
    ):
        declare(commands)


def _up(commands: Any) -> None:
    parser = commands.add_parser(
        "up",
        help="start the local stack: broker, database, gateway (Ctrl-C stops it)",
        description="Start everything sshtrail needs on this machine and keep it "
        "running until Ctrl-C or SIGTERM: the embedded broker (unless --kafka or "
        "kafka.bootstrap_servers names an Apache Kafka), the topics, the session store "
        "at the latest schema, one member of each consumer group (store, index), the "
        "gateway and the web console. Missing topics are created as docs/operations.md "
        "recommends; existing ones are checked: a difference that is safe is a warning, "
        "one that breaks a promise (a control topic not compacted, a sessions topic "
        "holding messages with another partition count than kafka.partitions ...) "
        "starts nothing, exit status 1. A second run reuses the state in state_dir.",
    )
    parser.add_argument(
        "--kafka",
        metavar="HOST:PORT,...",
        help="use this Apache Kafka instead of the embedded broker "
        "(kafka.bootstrap_servers; the stack's processes use it too)",
    )
    parser.add_argument(
        "--demo",
        action="store_true",
        help="also start a demo target (a login shell as you, loopback only) and a demo "
        "operator, and print the ssh command to try",
    )
    parser.add_argument(
        "--verbose",
        action="store_true",
        help="show the logs of the stack's processes here, instead of in STATE/logs/",
    )
    parser.set_defaults(handler="sshtrail.cli.up:run")


def _broker(commands: Any) -> None:
    parser = commands.add_parser(
        "broker",
        help="run the embedded Kafka-protocol broker (development and tests)",
        description="Run the embedded Kafka-protocol broker in the foreground until "
        "Ctrl-C or SIGTERM. Its data survives restarts. Production uses Apache Kafka.",
    )
    parser.add_argument("--host", help="address to listen on (default: broker.host, 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port to listen on (default: broker.port, 9092)")
    parser.add_argument("--data-dir", type=Path, help="where to keep data (default: STATE/broker)")
    parser.add_argument(
        "--no-topics",
        action="store_true",
        help="do not create the sessions and dead-letter topics on start",
    )
    parser.set_defaults(handler="sshtrail.cli.broker:run")


def _db(commands: Any) -> None:
    parser = commands.add_parser(
        "db",
        help="migrate the session store (upgrade, downgrade, current, check)",
        description="Manage the session store's schema with the Alembic migrations "
        "shipped in sshtrail. The database is database.url from the settings.",
    )
    parser.add_argument("--url", help="database URL (default: database.url, else SQLite in STATE)")
    actions = parser.add_subparsers(dest="action", metavar="ACTION")
    actions.required = True
    upgrade = actions.add_parser("upgrade", help="apply migrations up to REVISION (default head)")
    upgrade.add_argument("revision", nargs="?", default="head")
    upgrade.set_defaults(handler="sshtrail.cli.db:_upgrade")
    downgrade = actions.add_parser("downgrade", help="revert migrations down to REVISION")
    downgrade.add_argument("revision", help="target revision, or 'base' to drop everything")
    downgrade.set_defaults(handler="sshtrail.cli.db:_downgrade")
    current = actions.add_parser("current", help="print the database's schema revision")
    current.set_defaults(handler="sshtrail.cli.db:_current")
    check = actions.add_parser("check", help="fail if the models and the migrations differ")
    check.set_defaults(handler="sshtrail.cli.db:_check")


def _config(commands: Any) -> None:
    parser = commands.add_parser(
        "config",
        help="validate the settings and print the effective values as JSON",
        description="Read the settings file and SSHTRAIL_* variables exactly as every "
        "other command does, and print the result. Exit status 2 names the bad key.",
    )
    parser.add_argument(
        "--reference",
        action="store_true",
        help="print every settings key with its type, default, environment variable and "
        "meaning (Markdown, as in docs/operations.md) instead",
    )
    parser.set_defaults(handler="sshtrail.cli.config:run")


def _audit(commands: Any) -> None:
    listing = commands.add_parser(
        "sessions",
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
    listing.set_defaults(handler="sshtrail.cli.audit:run_sessions")

    show = commands.add_parser("show", help="one session: metadata, commands, gaps, verification")
    show.add_argument("session", metavar="SID", help="session id or a unique prefix of it")
    show.add_argument("--json", action="store_true")
    show.set_defaults(handler="sshtrail.cli.audit:run_show")

    finder = commands.add_parser(
        "search",
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
    finder.set_defaults(handler="sshtrail.cli.audit:run_search")

    transfers = commands.add_parser(
        "transfers",
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
    transfers.add_argument(
        "--all", action="store_true", help="also stat, realpath, listings and the like"
    )
    transfers.add_argument("--limit", type=positive, default=100, help="at most N (default 100)")
    format_options(transfers)
    transfers.set_defaults(handler="sshtrail.cli.transfers:run_transfers")


def _evidence(commands: Any) -> None:
    verify = commands.add_parser(
        "verify",
        help="recompute a session's hash chain and check the gateway's signature",
        description="Check stored sessions against tampering: every chunk must decode, link "
        "to the one before, and the end chunk must carry a valid signature by a trusted "
        "gateway key. Prints ok, gap, unsigned or tampered (with the chunk); exits 0 only "
        "if every session checked is ok.",
    )
    which = verify.add_mutually_exclusive_group(required=True)
    which.add_argument("session", nargs="?", metavar="SID", help="session id or unique prefix")
    which.add_argument("--all", action="store_true", help="every stored session")
    which.add_argument(
        "--cross-check",
        action="store_true",
        help="every session the search index read, against the store: missing from it, "
        "or ending elsewhere (docs/operations.md, 'Checking the store against the index')",
    )
    verify.add_argument(
        "--trust",
        type=Path,
        action="append",
        metavar="KEYFILE",
        help="a gateway's signing public key (repeatable)",
    )
    verify.add_argument("--json", action="store_true")
    verify.set_defaults(handler="sshtrail.cli.evidence:run_verify")

    export = commands.add_parser(
        "export",
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
    export.add_argument("--force", action="store_true", help="with -o: replace an existing FILE")
    export.set_defaults(handler="sshtrail.cli.evidence:run_export")


def _replay(commands: Any) -> None:
    replay = commands.add_parser(
        "replay",
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
    replay.add_argument(
        "--raw",
        action="store_true",
        help="write the output bytes exactly as recorded, without the terminal filter",
    )
    replay.add_argument(
        "--resize",
        action="store_true",
        help="ask the terminal to take the recording's size first (xterm and most others "
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
    replay.set_defaults(handler="sshtrail.cli.replay:run_replay")


def _escrow(commands: Any) -> None:
    keygen = commands.add_parser(
        "escrow-keygen",
        help="make an escrow key pair: masked input is sealed to its public key",
        description="Write a new X25519 private key to PATH (mode 0600) and its public key "
        "to PATH.pub, and print the public key for gateway.escrow_public_key. Keep the "
        "private key away from the gateway: whoever holds it can reveal what operators "
        "typed without echo (passwords included).",
    )
    keygen.add_argument("path", type=Path, metavar="PATH")
    keygen.set_defaults(handler="sshtrail.cli.escrow:run_keygen")

    reveal = commands.add_parser(
        "reveal",
        help="show a session's masked input, opened with the escrow private key",
        description="Open the input a session's gateway sealed because the terminal did not "
        "echo it (passwords, or commands typed with echo off), with the escrow private key. "
        "Each reveal is logged.",
    )
    reveal.add_argument("session", metavar="SID", help="session id or a unique prefix of it")
    reveal.add_argument(
        "--key",
        type=Path,
        required=True,
        metavar="PATH",
        help="the escrow private key (from escrow-keygen)",
    )
    reveal.add_argument("--reason", default="", help="why, for the log")
    reveal.add_argument("--json", action="store_true")
    reveal.set_defaults(handler="sshtrail.cli.escrow:run_reveal")


def _topics(commands: Any) -> None:
    parser = commands.add_parser(
        "topics",
        help="create the sessions, dead-letter and control topics if missing, and check them",
        description="Create kafka.topic, kafka.dlq_topic and control.topic where they do "
        "not exist, as docs/operations.md recommends (kafka.partitions; "
        "kafka.replication_factor, else 3 or the brokers if fewer; min.insync.replicas "
        "one less; retention 30 days; the control topic compacted; kafka.topic_config "
        "over these), then print what each has and how an existing one differs. An "
        "existing topic is never changed. Exit status 1 when the brokers cannot be "
        "reached, a topic cannot be created, or a difference breaks a promise (a control "
        "topic not compacted, a sessions topic holding messages with another partition "
        "count than kafka.partitions ...).",
    )
    parser.add_argument(
        "--wait",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="keep trying to reach the brokers for this long (a stack that is starting)",
    )
    parser.set_defaults(handler="sshtrail.cli.topics:run")


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


def _policy(commands: Any) -> None:
    parser = commands.add_parser(
        "policy",
        help="check a command policy file, or see which rule decides a command",
        description="Command policy (policy.file; docs/policy.md). 'policy check [FILE]' "
        "reads the rules as the gateway would and says what is wrong (exit 2) or lists "
        "them (exit 0). 'policy test --operator O --target T COMMAND' prints which rule "
        "decides COMMAND and exits 0 when it is accepted, 1 when rejected, 3 when warned, "
        "4 when held for review.",
    )
    actions = parser.add_subparsers(dest="policy_command", metavar="ACTION", required=True)
    check = actions.add_parser("check", help="read a rule file and list its rules")
    check.add_argument("file", nargs="?", type=Path, metavar="FILE", help="default: policy.file")
    check.set_defaults(handler="sshtrail.cli.policy:run_check")
    test = actions.add_parser("test", help="which rule decides a command, and why")
    test.add_argument("command", metavar="COMMAND", help="the command line, as typed")
    test.add_argument("--operator", required=True, metavar="NAME")
    test.add_argument("--target", required=True, metavar="NAME")
    test.add_argument("--file", type=Path, metavar="FILE", help="default: policy.file")
    test.add_argument("--json", action="store_true")
    test.set_defaults(handler="sshtrail.cli.policy:run_test")
