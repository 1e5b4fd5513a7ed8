"""``sshtrail lock`` and ``unlock``: refuse, or allow again, an operator's new sessions on
every gateway; the request stays on the control topic."""

from __future__ import annotations

import argparse
import getpass
import sys

from consumer.requester import ask
from consumer.web import access
from sshtrail import control
from sshtrail.commandkit.exits import EXIT_NOT_DONE
from sshtrail.settings import Settings


def run(args: argparse.Namespace, settings: Settings) -> int:
    request: control.Request
    if args.command == "lock":
        request = control.Lock(
            request_id=control.new_id(),
            at=control.now_ns(),
            operator=args.operator,
            auditor=str(args.as_ or getpass.getuser()),
            reason=args.reason,
            end_sessions=args.end_sessions,
        )
    else:
        request = control.Unlock(
            request_id=control.new_id(),
            at=control.now_ns(),
            operator=args.operator,
            auditor=str(args.as_ or getpass.getuser()),
            reason=args.reason,
        )
    access.record_from_cli(
        settings, request.auditor, args.command, None, f"{args.operator}: {args.reason}"
    )
    answers = ask(settings, request, args.wait)
    done = "locked" if args.command == "lock" else "unlocked"
    for answer in answers:
        print(f"{done} on gateway {answer.gateway}: {answer.detail}")
    if not answers:
        print(
            f"sshtrail: no gateway answered within {args.wait:g} s; the request is on "
            f"{settings.control.topic} and every gateway applies it when it reads it",
            file=sys.stderr,
        )
        return EXIT_NOT_DONE
    return 0
