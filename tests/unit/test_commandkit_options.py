"""The argument blocks the commands share: each declares what it did when it was written
out in every command (name, type, bounds, wording), so the CLI reads the same."""

from __future__ import annotations

import argparse

import pytest

from sshtrail.commandkit.arguments import matching
from sshtrail.commandkit.options import command, flag, limit, since, why_and_who


class _Refusing(argparse.ArgumentParser):
    """A parser whose usage errors are raised, to be read by the test."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise ValueError(message)


def _parsers() -> tuple[argparse.ArgumentParser, argparse.ArgumentParser]:
    """The top-level parser and its one command's."""
    top = _Refusing(prog="sshtrail")
    commands = top.add_subparsers(dest="command", parser_class=_Refusing)
    parser = command(commands, "thing", "module:run", help="a thing", description="Long.")
    flag(parser, "--all", "every one")
    limit(parser, 100)
    since(parser, "only since")
    why_and_who(parser, "why")
    return top, parser


def _parser() -> argparse.ArgumentParser:
    return _parsers()[0]


def test_a_command_names_its_handler_and_its_options_their_defaults() -> None:
    args = _parser().parse_args(["thing", "--reason", "  audit 7  "])
    assert args.handler == "module:run"
    assert args.all is False
    assert args.limit == 100
    assert args.since is None
    assert args.reason == "audit 7"  # stripped: the record keeps the words
    assert args.as_ is None


def test_the_shared_options_refuse_what_is_out_of_bounds() -> None:
    parser = _parser()
    with pytest.raises(ValueError, match="'0' is not 1 to 1000000"):
        parser.parse_args(["thing", "--reason", "r", "--limit", "0"])
    with pytest.raises(ValueError, match="give a reason of 1 to 500 characters"):
        parser.parse_args(["thing", "--reason", " "])
    with pytest.raises(ValueError, match="required: --reason"):
        parser.parse_args(["thing"])


def test_the_requester_follows_the_reason_in_help_as_it_did() -> None:
    options = _parsers()[1].format_help().partition("options:")[2]
    assert options.index("--reason TEXT") < options.index("--as NAME")
    assert "the requester's name in the record (default: your user name)" in options


def test_a_matching_argument_takes_only_a_whole_match_and_names_what_was_given() -> None:
    group = matching(r"[a-z]{1,8}", "{text!r} is not a valid id")
    assert group("store") == "store"
    for bad in ("store!", "x store", "", "abcdefghi"):
        with pytest.raises(argparse.ArgumentTypeError, match=r"is not a valid id"):
            group(bad)
    with pytest.raises(argparse.ArgumentTypeError) as refused:
        group("a b")
    assert str(refused.value) == "'a b' is not a valid id"
