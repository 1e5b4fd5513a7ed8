"""``sshtrail db``: migrate the session store and inspect its schema version."""

from __future__ import annotations

import argparse

from sshtrail import migrate
from sshtrail.db import normalize_url, shown_url
from sshtrail.settings import Settings


def _url(args: argparse.Namespace, settings: Settings) -> str:
    url: str = args.url or settings.database_url
    normalize_url(url)  # a bad URL is a usage error before anything connects
    return url


def _upgrade(args: argparse.Namespace, settings: Settings) -> int:
    url = _url(args, settings)
    migrate.upgrade(url, args.revision)
    print(f"{shown_url(url)}: at revision {migrate.current_revision(url)}")
    return 0


def _downgrade(args: argparse.Namespace, settings: Settings) -> int:
    url = _url(args, settings)
    migrate.downgrade(url, args.revision)
    print(f"{shown_url(url)}: at revision {migrate.current_revision(url) or 'base (empty)'}")
    return 0


def _current(args: argparse.Namespace, settings: Settings) -> int:
    url = _url(args, settings)
    current, head = migrate.current_revision(url), migrate.head_revision()
    state = "up to date" if current == head else f"behind head {head}; run 'sshtrail db upgrade'"
    print(f"{shown_url(url)}: at revision {current or 'base (empty)'} ({state})")
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
