"""``sshtrail web sessions`` and ``sshtrail web revoke``: the console's sign-ins, listed
and ended from a shell.

A revocation is written to the store, where every console process looks each request's
sign-in up: the auditor is signed out at their next request, in whichever process
serves it. It is recorded in the access log (action ``revoke``, address ``cli:HOST``)
under the local user running the command, unless ``--as`` names the admin."""

from __future__ import annotations

import argparse
import getpass
import sys

from consumer.web import access
from consumer.web.signins import listed, revoke, utc_now
from sshtrail.commandkit.exits import EXIT_NOT_DONE
from sshtrail.commandkit.output import chosen_format, print_json, print_listing
from sshtrail.commandkit.reading import store
from sshtrail.db import existing_engine
from sshtrail.errors import InvalidError, NotFound
from sshtrail.settings import Settings
from sshtrail.textsafe import local_time, visible


def run_list(args: argparse.Namespace, settings: Settings) -> int:
    with store(settings) as conn:
        found = listed(conn, args.all, utc_now())
    shape = chosen_format(args)
    if shape == "json":
        print_json(
            [
                {
                    "id": signin.id,
                    "auditor": signin.auditor,
                    "via": signin.via,
                    "created": signin.created.isoformat(),
                    "seen": signin.seen.isoformat(),
                    "expires": signin.expires.isoformat(),
                    "state": signin.state,
                    "revoked_by": signin.revoked_by,
                    "reason": signin.revoked_reason,
                }
                for signin in found
            ]
        )
        return 0
    csv_ = shape == "csv"
    header = ("ID", "AUDITOR", "VIA", "CREATED", "LAST SEEN", "EXPIRES", "STATE")
    rows = [
        (
            signin.id if csv_ else signin.id[:12],
            visible(signin.auditor),
            signin.via,
            *(
                moment.isoformat() if csv_ else local_time(moment)
                for moment in (signin.created, signin.seen, signin.expires)
            ),
            signin.state,
        )
        for signin in found
    ]
    print_listing([header, *rows], csv_, "(nobody is signed in)")
    return 0


def run_revoke(args: argparse.Namespace, settings: Settings) -> int:
    if (args.id is None) == (args.user is None):
        raise InvalidError("give a sign-in's ID or --user NAME (one of them)")
    admin = str(args.as_ or getpass.getuser())
    engine = existing_engine(settings.database_url, "store")
    try:
        with engine.begin() as conn:
            ended = revoke(
                conn, prefix=args.id, user=args.user, by=admin, reason=args.reason, now=utc_now()
            )
    except ValueError as exc:
        raise NotFound(str(exc)) from None
    finally:
        engine.dispose()
    if not ended:
        who = f"sign-in {args.id}" if args.id else f"{args.user}"
        print(f"sshtrail: {visible(who)} has no sign-in in use", file=sys.stderr)
        return EXIT_NOT_DONE
    for signin_id, auditor in ended:
        detail = f"sign-in {signin_id[:12]} of {auditor}: {args.reason}"
        access.record_from_cli(settings, admin, "revoke", None, detail)
        print(f"revoked sign-in {signin_id[:12]} of {visible(auditor)}")
    return 0
