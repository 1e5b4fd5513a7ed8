"""``sshtrail password-hash``: an scrypt hash for an operator's or auditor's ``password_hash``."""

from __future__ import annotations

import argparse
import getpass
import sys

from sshtrail.passwords import hash_password
from sshtrail.settings import Settings


def run(_args: argparse.Namespace, _settings: Settings) -> int:
    if sys.stdin.isatty():
        password = getpass.getpass("password: ")
        if getpass.getpass("again: ") != password:
            print("sshtrail: error: the passwords differ", file=sys.stderr)
            return 2
    else:
        password = sys.stdin.readline().rstrip("\n")
    if len(password) < 8:
        print("sshtrail: error: use at least 8 characters", file=sys.stderr)
        return 2
    print(hash_password(password))
    return 0
