"""``sshtrail db``: migrate the session store and inspect its schema version."""

from __future__ import annotations

import argparse
from typing import Any

from sshtrail import migrate
from sshtrail.db import normalize_url
from sshtrail.settings import Settings


def register(commands: Any) -> None:
    parser = commands.add_parser(
        "db",
        help="migrate the session store (upgrade, downgrade, current, check)",
        description="Manage the session store's schema with the Alembic migrations "
        "shipped in sshtrail. The database is database.url from the settings.",
    )
    parser.add_argument("--url", help="database URL (default: database.url, else SQLite in STATE)")
    actions = parser.add_subparsers(dest="action", metavar="ACTION")
    actions.required = True
    upgrade = actions.add_parser("upgrade", help="apply migrations up to REVISION (default head)")
    upgrade.add_argument("revision", nargs="?", default="head")
    upgrade.set_defaults(handler=_upgrade)
    downgrade = actions.add_parser("downgrade", help="revert migrations down to REVISION")
    downgrade.add_argument("revision", help="target revision, or 'base' to drop everything")
    downgrade.set_defaults(handler=_downgrade)
    current = actions.add_parser("current", help="print the database's schema revision")
    current.set_defaults(handler=_current)
    check = actions.add_parser("check", help="fail if the models and the migrations differ")
    check.set_defaults(handler=_check)


def _url(args: argparse.Namespace, settings: Settings) -> str:
    url: str = args.url or settings.database_url
    normalize_url(url)  # a bad URL is a usage error before anything connects
    return url


def _shown(url: str) -> str:
    """The URL without its password, safe to print."""
    return normalize_url(url).render_as_string(hide_password=True)


def _upgrade(args: argparse.Namespace, settings: Settings) -> int:
    url = _url(args, settings)
    migrate.upgrade(url, args.revision)
    print(f"{_shown(url)}: at revision {migrate.current_revision(url)}")
    return 0


def _downgrade(args: argparse.Namespace, settings: Settings) -> int:
    url = _url(args, settings)
    migrate.downgrade(url, args.revision)
    print(f"{_shown(url)}: at revision {migrate.current_revision(url) or 'base (empty)'}")
    return 0


def _current(args: argparse.Namespace, settings: Settings) -> int:
    url = _url(args, settings)
    current, head = migrate.current_revision(url), migrate.head_revision()
    state = "up to date" if current == head else f"behind head {head}; run 'sshtrail db upgrade'"
    print(f"{_shown(url)}: at revision {current or 'base (empty)'} ({state})")
    return 0


def _check(args: argparse.Namespace, settings: Settings) -> int:
    url = _url(args, settings)
    migrate.upgrade(url)
    changes = migrate.pending_model_changes(url)
    for change in changes:
        print(f"drift: {change}")
    if changes:
        print("the models differ from the migrations: write a migration")
        return 1
    print("models and migrations agree")
    return 0
