"""``sshtrail config``: validate the settings and print what is in effect."""

from __future__ import annotations

import argparse
from typing import Any

import msgspec

from sshtrail.db import normalize_url
from sshtrail.settings import Settings


def register(commands: Any) -> None:
    parser = commands.add_parser(
        "config",
        help="validate the settings and print the effective values as JSON",
        description="Read the settings file and SSHTRAIL_* variables exactly as every "
        "other command does, and print the result. Exit status 2 names the bad key.",
    )
    parser.set_defaults(handler=run)


def run(_args: argparse.Namespace, settings: Settings) -> int:
    data = msgspec.to_builtins(settings)
    # Secrets stay out of terminals and logs: SASL passwords, database passwords.
    data["kafka"]["client"] = {key: "(set)" for key in data["kafka"]["client"]}
    if settings.database.url:
        data["database"]["url"] = normalize_url(settings.database.url).render_as_string(
            hide_password=True
        )
    print(msgspec.json.format(msgspec.json.encode(data), indent=2).decode())
    return 0
