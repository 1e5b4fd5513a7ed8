"""Entry point of the ``sshtrail`` console script: parse, load settings, dispatch."""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Callable, Sequence

from sshtrail import __version__
from sshtrail.cli.commands import register as register_builtin
from sshtrail.commandkit.exits import EXIT_BROKEN_PIPE, EXIT_FAILURE, EXIT_NOT_FOUND, EXIT_USAGE
from sshtrail.errors import ConfigError, InvalidError, NotFound, SshtrailError
from sshtrail.settings import Settings, load_settings
from sshtrail.statedir import UMASK

#: Options of the top-level parser that take a value (to find the command name).
_VALUED = ("-c", "--config", "--log-level")


class _Parser(argparse.ArgumentParser):
    """argparse with our message style; ``exit_on_error`` stays as argparse has it."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser of every command; of the built-in ones only when ``command`` is one of
    them or ``""`` (--version), as finding the others scans the installed packages.
    Declaring them is cheap (:mod:`sshtrail.cli.commands`): what a command runs is
    imported only when it runs (:func:`handler_of`)."""
    parser = _Parser(
        prog="sshtrail",
        description="SSH session-audit pipeline: record, store, search, replay and verify "
        "SSH sessions.",
        epilog="Run 'sshtrail COMMAND --help' for a command's options. Start with 'sshtrail up'. "
        "Exit status: 0 done; 1 an error, or nothing matched / not verified / lagging; 2 a "
        "usage error; 3 no such session, or an ambiguous id; 4 could not verify (the Kafka "
        "topic to check against unread); 141 the output's reader went away.",
    )
    parser.add_argument("--version", action="version", version=f"sshtrail {__version__}")
    parser.add_argument(
        "-c",
        "--config",
        metavar="PATH",
        help="settings file (default: $SSHTRAIL_CONFIG, else ./sshtrail.toml if present)",
    )
    parser.add_argument(
        "--log-level",
        choices=("debug", "info", "warning", "error"),
        help="override log_level from the settings",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    commands.required = True
    register_builtin(commands)
    if command == "" or command in commands.choices:  # --version, or a built-in command
        return parser
    # producer/ and consumer/ add their commands through this entry point group
    # (one entry per command name), so the shared package never imports them.
    from importlib.metadata import entry_points  # noqa: PLC0415 (20 ms: only when needed)

    plugins = [entry.value for entry in entry_points(group="sshtrail.commands")]
    for target in dict.fromkeys(plugins):  # a module registering several commands: once
        module, _, function = target.partition(":")
        getattr(importlib.import_module(module), function or "register")(commands)
    return parser


def handler_of(args: argparse.Namespace) -> Callable[[argparse.Namespace, Settings], int]:
    """The function that runs the parsed command, imported now from its ``module:function``."""
    module, _, function = str(args.handler).partition(":")
    found: Callable[[argparse.Namespace, Settings], int] = getattr(
        importlib.import_module(module), function
    )
    return found


def _command_parser(
    parser: argparse.ArgumentParser, args: argparse.Namespace
) -> argparse.ArgumentParser:
    """The parser of the command ``args`` were parsed for, down to its action
    (``alerts hunt``); the top-level parser if there is none."""
    found = parser
    while True:
        action = next(
            (a for a in found._actions if isinstance(a, argparse._SubParsersAction)), None
        )
        chosen = getattr(args, action.dest, None) if action is not None else None
        if action is None or chosen not in action.choices:
            return found
        found = action.choices[chosen]


def _command(argv: Sequence[str]) -> str | None:
    """The command name in ``argv``, skipping top-level options and their values;
    ``""`` when only the version is asked for."""
    skip = False
    for arg in argv:
        if skip:
            skip = False
        elif arg in _VALUED:
            skip = True
        elif not arg.startswith("-"):
            return arg
    return "" if "--version" in argv and not {"-h", "--help"} & set(argv) else None


def main(argv: Sequence[str] | None = None) -> int:
    # Recordings, keys and databases are for their owner only (sshtrail/statedir.py).
    os.umask(UMASK)
    arguments = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(_command(arguments))
    args, unknown = parser.parse_known_args(arguments)
    if unknown:  # said by the command's own parser, with its own usage
        _command_parser(parser, args).error(f"unrecognized arguments: {' '.join(unknown)}")
    try:
        # `up` records the variables it runs with (sshtrail/stackenv.py) for the
        # commands after it; it must not read what a previous run of it left.
        settings = load_settings(args.config, recorded=_command(arguments) != "up")
    except ConfigError as exc:
        print(f"sshtrail: config error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    logging.basicConfig(
        level=(args.log_level or settings.log_level).upper(),
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if logging.getLogger().level > logging.DEBUG:
        logging.getLogger("alembic").setLevel(logging.WARNING)  # commands print their outcome
    try:
        status: int = handler_of(args)(args, settings)
        sys.stdout.flush()  # a closed pipe shows here, not at the interpreter's exit
    except BrokenPipeError:
        # The reader went away (`| head`): end quietly, as a Unix tool killed by SIGPIPE.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
    except NotFound as exc:
        print(f"sshtrail: error: {exc}", file=sys.stderr)
        return EXIT_NOT_FOUND
    except InvalidError as exc:
        print(f"sshtrail: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except SshtrailError as exc:
        print(f"sshtrail: error: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        return 130
    return status


if __name__ == "__main__":
    sys.exit(main())
