"""``sshtrail config``: validate the settings and print what is in effect."""

from __future__ import annotations

import argparse
import sys

import msgspec

from sshtrail.db import normalize_url
from sshtrail.settings import Settings, read_settings
from sshtrail.settings_doc import reference
from sshtrail.stackenv import Sources

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
    # Where they came from, on stderr: stdout stays the JSON scripts read. Read again
    # (the same way main read them) because only the settings are passed in.
    for line in sources_said(read_settings(args.config)[1]):
        print(line, file=sys.stderr)
    return 0


def sources_said(sources: Sources) -> list[str]:
    """Which file and which variables made the settings, as ``config`` tells them;
    names only, never values (a variable may hold a password)."""
    lines = [f"settings file: {sources.file or 'none (defaults)'}"]
    lines.append(f"environment: {', '.join(sources.environment) or 'no SSHTRAIL_* variables'}")
    if sources.recorded is not None:
        taken = ", ".join(sources.recorded_variables) or "none (this command sets them all)"
        lines.append(f"recorded by sshtrail up in {sources.recorded}: {taken}")
    if sources.skipped is not None:
        lines.append(sources.skipped)
    return lines
