"""``sshtrail verify --cross-check``: every session the index read, held against the store."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from sqlalchemy import make_url

from sshtrail.commandkit.exits import EXIT_UNVERIFIED
from sshtrail.commandkit.output import print_json
from sshtrail.commandkit.reading import index, store
from sshtrail.crosscheck import cross_check
from sshtrail.errors import BrokerError
from sshtrail.letters import StoreLetters
from sshtrail.settings import Settings
from sshtrail.textsafe import visible


def run(args: argparse.Namespace, settings: Settings) -> int:
    if same_database(settings.database_url, settings.search_url):
        print(
            "sshtrail: warning: the store and the search index are one database: a writer "
            "of one is a writer of both, and the cross-check proves nothing against it "
            "(docs/operations.md)",
            file=sys.stderr,
        )
    try:
        with index(settings) as indexed, store(settings) as stored:
            tally = cross_check(indexed, stored, StoreLetters(settings))
    except BrokerError as exc:
        print(
            f"sshtrail: could not verify: the quarantined sessions are held to the "
            f"dead-letter topic, which cannot be read: {exc}",
            file=sys.stderr,
        )
        return EXIT_UNVERIFIED
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


def same_database(store_url: str, search_url: str) -> bool:
    """Whether the two URLs name one database (one file, or one server's database),
    whatever role each connects as."""
    store, search = make_url(store_url), make_url(search_url)
    if store.get_backend_name() != search.get_backend_name():
        return False
    if store.get_backend_name() == "sqlite":
        return bool(store.database) and (
            Path(store.database or "").resolve() == Path(search.database or "").resolve()
        )
    return (store.host or "", store.port or 5432, store.database) == (
        search.host or "",
        search.port or 5432,
        search.database,
    )
