"""``sshtrail terminate``, ``lock`` and ``unlock``: requests to the gateways, from a shell.

The requester's name in the record (``terminated by NAME: REASON``) is the
local user running the command, unless ``--as`` names the auditor.
"""

from __future__ import annotations

import argparse
import getpass
import socket
import sys
import uuid

from sqlalchemy.exc import SQLAlchemyError

from consumer.control import ask, session_state
from consumer.web import access
from sshtrail import control
from sshtrail.commandkit.reading import store
from sshtrail.db import existing_engine
from sshtrail.errors import NotSetUp
from sshtrail.settings import Settings
from sshtrail.textsafe import visible

#: Exit statuses (docs/operations.md, "Exit status").
EXIT_NOT_DONE = 1


def run_terminate(args: argparse.Namespace, settings: Settings) -> int:
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
        auditor=_who(args),
        reason=args.reason,
    )
    _logged(settings, request.auditor, "terminate", state.session_id, args.reason)
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


def run_lock(args: argparse.Namespace, settings: Settings) -> int:
    request: control.Request
    if args.command == "lock":
        request = control.Lock(
            request_id=control.new_id(),
            at=control.now_ns(),
            operator=args.operator,
            auditor=_who(args),
            reason=args.reason,
            end_sessions=args.end_sessions,
        )
    else:
        request = control.Unlock(
            request_id=control.new_id(),
            at=control.now_ns(),
            operator=args.operator,
            auditor=_who(args),
            reason=args.reason,
        )
    _logged(settings, request.auditor, args.command, None, f"{args.operator}: {args.reason}")
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


def _logged(
    settings: Settings, who: str, action: str, session_id: uuid.UUID | None, detail: str
) -> None:
    """The request in the access log, beside the web console's (address ``cli:HOST``)."""
    try:
        engine = existing_engine(settings.database_url, "store")
        chain = access.chain(settings, engine)
        try:
            access.record(
                chain,
                who,
                action,
                f"cli:{socket.gethostname()}",
                session_id=session_id,
                detail=detail,
            )
        finally:
            chain.close()
            engine.dispose()
    except (NotSetUp, SQLAlchemyError) as exc:
        print(f"sshtrail: the request is not in the access log: {exc}", file=sys.stderr)


def _who(args: argparse.Namespace) -> str:
    return str(args.as_ or getpass.getuser())
