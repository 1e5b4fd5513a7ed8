"""``sshtrail delete SID --reason``: an admin deletes one session now (a GDPR request),
refused for a held one; the tombstone names who and why (consumer/deletion.py)."""

from __future__ import annotations

import argparse
import datetime as dt
import getpass
import sys

from consumer.deletion import Deletion, Held, delete_session
from consumer.service import open_database
from consumer.web import access
from sshtrail import queries, tombstone
from sshtrail.commandkit.exits import EXIT_NOT_DONE
from sshtrail.settings import Settings


def run(args: argparse.Namespace, settings: Settings) -> int:
    who = str(args.as_ or getpass.getuser())
    signer = tombstone.signing_key(settings)
    engine = open_database(settings)
    try:
        with engine.begin() as conn:
            session_id = queries.resolve(conn, args.session)
            try:
                deletion = Deletion(None, who, args.reason, signer, dt.datetime.now(dt.UTC))
                row = delete_session(conn, session_id, deletion)
            except Held as held:
                access.record_from_cli(settings, who, "delete", session_id, f"refused: {held}")
                print(f"sshtrail: {held}", file=sys.stderr)
                return EXIT_NOT_DONE
    finally:
        engine.dispose()
    access.record_from_cli(settings, who, "delete", session_id, args.reason)
    print(f"{session_id}  {tombstone.describe(row)}")
    return 0
