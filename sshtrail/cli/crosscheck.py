"""``sshtrail verify --cross-check``: every session the index read, held against the store."""

from __future__ import annotations

import argparse
import sys

from sshtrail.cli.output import print_json
from sshtrail.cli.reading import index, store
from sshtrail.crosscheck import cross_check
from sshtrail.settings import Settings
from sshtrail.textsafe import visible


def run(args: argparse.Namespace, settings: Settings) -> int:
    with index(settings) as indexed, store(settings) as stored:
        tally = cross_check(indexed, stored)
    if args.json:
        print_json(
            [
                {"session": str(d.session_id), "status": d.finding, "detail": d.detail}
                for d in tally.disagreements
            ]
        )
    else:
        for found in tally.disagreements:
            print(f"{found.session_id}  {found.finding}  {visible(found.detail)}")
    differ = len(tally.disagreements)
    print(
        f"{tally.compared} sessions in the search index, {tally.compared - differ} as the "
        f"store has them, {differ} not"
        + (
            "; a store group behind the index group looks the same: see sshtrail lag"
            if differ
            else ""
        ),
        file=sys.stderr,
    )
    return 1 if differ else 0
