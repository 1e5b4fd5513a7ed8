"""``sshtrail terminate``: ask the gateways to end a session now.

The requester's name in the record (``terminated by NAME: REASON``) is the local user
running the command, unless ``--as`` names the auditor."""

from __future__ import annotations

import argparse
import getpass
import sys

from consumer.requester import ask, session_state
from consumer.web import access
from sshtrail import control
from sshtrail.commandkit.exits import EXIT_NOT_DONE
from sshtrail.commandkit.reading import store
from sshtrail.settings import Settings
from sshtrail.textsafe import visible


def run(args: argparse.Namespace, settings: Settings) -> int:
    with store(settings) as conn:
        state = session_state(conn, args.session)
    if not state.active:
        print(
            f"sshtrail: session {state.session_id} already ended: "
            f"{visible(state.end_reason or 'no end recorded')}",
            file=sys.stderr,
        )
        return EXIT_NOT_DONE
    request = control.Terminate(
        request_id=control.new_id(),
        at=control.now_ns(),
        session=str(state.session_id),
        auditor=str(args.as_ or getpass.getuser()),
        reason=args.reason,
    )
    access.record_from_cli(settings, request.auditor, "terminate", state.session_id, args.reason)
    answers = ask(settings, request, args.wait)
    if not answers:
        print(
            f"sshtrail: no gateway answered within {args.wait:g} s: session "
            f"{state.session_id} is not open on any running gateway (it may have just "
            "ended; sshtrail show tells once the store has its end)",
            file=sys.stderr,
        )
        return EXIT_NOT_DONE
    print(f"session {state.session_id} {answers[0].detail} (gateway {answers[0].gateway})")
    return 0
