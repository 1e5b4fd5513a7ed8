"""``sshtrail config``: validate the settings and print what is in effect."""

from __future__ import annotations

import argparse

import msgspec

from sshtrail.db import normalize_url
from sshtrail.settings import Settings
from sshtrail.settings_doc import reference

#: Printed instead of a secret that is set.
HIDDEN = "(set)"


def run(args: argparse.Namespace, settings: Settings) -> int:
    if args.reference:
        print(reference(), end="")
        return 0
    data = msgspec.to_builtins(settings)
    # Secrets stay out of terminals and logs: SASL passwords, database passwords.
    data["kafka"]["client"] = dict.fromkeys(data["kafka"]["client"], HIDDEN)
    if data["web"]["oidc"]["client_secret"]:
        data["web"]["oidc"]["client_secret"] = HIDDEN
    for operator in data["operators"]:
        if operator["password_hash"]:
            operator["password_hash"] = HIDDEN
    for section in ("database", "search"):
        if data[section]["url"]:
            shown = normalize_url(data[section]["url"]).render_as_string(hide_password=True)
            data[section]["url"] = shown
    print(msgspec.json.format(msgspec.json.encode(data), indent=2).decode())
    return 0
