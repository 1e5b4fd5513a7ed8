"""Entry point of the ``sshtrail`` console script: parse, load settings, dispatch."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from importlib.metadata import entry_points

from sshtrail import __version__
from sshtrail.cli import audit, broker, config, db, evidence, replay, up
from sshtrail.errors import ConfigError, InvalidError, SshtrailError
from sshtrail.settings import load_settings

#: Exit status for usage and configuration errors, as argparse uses.
EXIT_USAGE = 2
EXIT_FAILURE = 1

_COMMANDS = (up, broker, db, config, audit, evidence, replay)


class _Parser(argparse.ArgumentParser):
    """argparse with our message style; ``exit_on_error`` stays as argparse has it."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="sshtrail",
        description="SSH session-audit pipeline: record, store, search, replay and verify "
        "SSH sessions.",
        epilog="Run 'sshtrail COMMAND --help' for a command's options. Start with 'sshtrail up'.",
    )
    parser.add_argument("--version", action="version", version=f"sshtrail {__version__}")
    parser.add_argument(
        "-c", "--config", metavar="PATH",
        help="settings file (default: $SSHTRAIL_CONFIG, else ./sshtrail.toml if present)",
    )  # fmt: skip
    parser.add_argument(
        "--log-level", choices=("debug", "info", "warning", "error"),
        help="override log_level from the settings",
    )  # fmt: skip
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    commands.required = True
    for module in _COMMANDS:
        module.register(commands)
    # producer/ and consumer/ add their commands through this entry point group,
    # so the shared package never imports them (dependencies point one way).
    for entry in sorted(entry_points(group="sshtrail.commands"), key=lambda e: e.name):
        entry.load()(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        settings = load_settings(args.config)
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
        status: int = args.handler(args, settings)
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
