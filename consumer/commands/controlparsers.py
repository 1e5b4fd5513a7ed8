"""What the consumer side's requests to the gateways are called and take: terminate,
review, lock and unlock, and the lists read back from the control topic (reviews, locks,
moderated sessions). One parser function per command, as in
:mod:`consumer.commands.parsers`; the handlers are imported only when they run."""

from __future__ import annotations

import argparse
from typing import Any

from sshtrail.commandkit.arguments import ranged
from sshtrail.commandkit.options import command, flag, reason, requester
from sshtrail.commandkit.output import format_options

#: Why a request is made, as the operator is shown it.
_SHOWN_REASON = "why (shown to the operator, recorded)"


def terminate(commands: Any) -> None:
    parser = command(
        commands,
        "terminate",
        "consumer.commands.terminate:run",
        help="end an active session now: the operator is told why, the end is recorded",
        description="Ask the gateways (control topic, signed with the control key) to end "
        "session ID. The gateway holding it writes the reason on the operator's terminal, "
        "closes the session and records its end as 'terminated by NAME: REASON'. Exits 0 "
        "when done, 1 when it had already ended or no gateway answered, 3 for an unknown id.",
    )
    parser.add_argument("session", metavar="ID", help="session id or unique prefix")
    reason(parser, _SHOWN_REASON)
    _wait_and_requester(parser)


def reviews(commands: Any) -> None:
    parser = command(
        commands,
        "reviews",
        "consumer.commands.reviews:run_list",
        help="commands held at the gateways for an auditor's approval (four eyes)",
        description="List the reviews asked for on the control topic (docs/policy.md): "
        "by default those still waiting for an answer. Exits 0 when it lists some, 1 when "
        "none.",
    )
    flag(parser, "--all", "every review of the look-back, with how it ended")
    _hours(parser)
    format_options(parser, "a review")


def review(commands: Any) -> None:
    parser = command(
        commands,
        "review",
        "consumer.commands.reviews:run_answer",
        help="approve or deny a command held for review",
        description="Answer review ID (as 'sshtrail reviews' shows it, 8 characters or "
        "more) on the control topic, signed with the control key. The gateway holding it "
        "runs the command (approve) or drops it and tells the operator who denied it and "
        "why (deny). Nobody may answer a review of their own command. Exits 0 when the "
        "gateway took the answer, 1 when it refused it or did not answer, 2 for one's "
        "own command, 3 for an unknown id.",
    )
    parser.add_argument("review", metavar="ID", help="the review's id or a unique start of it")
    parser.add_argument("answer", choices=("approve", "deny"))
    reason(parser, _SHOWN_REASON)
    _wait_and_requester(parser)


def lock(commands: Any) -> None:
    _locking(commands, "lock", "refuse")


def unlock(commands: Any) -> None:
    _locking(commands, "unlock", "allow again")


def _locking(commands: Any, name: str, verb: str) -> None:
    parser = command(
        commands,
        name,
        "consumer.commands.lock:run",
        help=f"{verb} new sessions of an operator on every gateway",
        description=f"Ask every gateway to {verb} new sessions of OPERATOR until "
        + (
            "'sshtrail unlock'. With --end-sessions, their active sessions end too. "
            if name == "lock"
            else "locked again. "
        )
        + "The request stays on the control topic: gateways started later apply it.",
    )
    parser.add_argument("operator", metavar="OPERATOR")
    reason(parser, _SHOWN_REASON)
    if name == "lock":
        flag(parser, "--end-sessions", "also end their active sessions")
    _wait_and_requester(parser)


def locks(commands: Any) -> None:
    parser = command(
        commands,
        "locks",
        "consumer.commands.locks:run",
        help="the operators locked now: who locked them, when, why",
        description="List the operators locked on the control topic, as the gateways "
        "decide: for each operator the lock or unlock signed last by a trusted control key "
        "(control.trusted_keys). Exits 0 when it lists some, 1 when none.",
    )
    flag(parser, "--all", "the operators unlocked too (their last unlock)")
    format_options(parser, "an operator")


def moderate(commands: Any) -> None:
    parser = command(
        commands,
        "moderate",
        "consumer.commands.moderate:run",
        help="moderated sessions waiting for a moderator",
        description="List the moderated sessions of the control topic (docs/moderation.md): "
        "by default those waiting for a moderator to start or paused until one is back. "
        "Join one with 'sshtrail watch --moderate SID'. Exits 0 when it lists some, 1 when "
        "none.",
    )
    flag(parser, "--all", "every moderated session of the look-back, running and ended too")
    _hours(parser)
    format_options(parser, "a moderated session")


def _wait_and_requester(parser: argparse.ArgumentParser) -> None:
    """How long a request waits for the gateway that holds what it names, and who asks."""
    parser.add_argument(
        "--wait",
        type=ranged(float, 1.0, 300.0, "1 to 300 seconds"),
        default=10.0,
        metavar="S",
        help="how long to wait for a gateway's answer (default 10)",
    )
    requester(parser)


def _hours(parser: argparse.ArgumentParser) -> None:
    """How far back the lists read from the control topic look."""
    parser.add_argument(
        "--hours",
        type=ranged(float, 0.01, 24 * 30, "0.01 to 720 hours"),
        default=24.0,
        metavar="H",
        help="how far back to look (default 24)",
    )
