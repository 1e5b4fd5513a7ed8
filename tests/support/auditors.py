"""Auditors in the settings, as the console's tests sign them in: ``[[auditors]]`` tables."""

from __future__ import annotations

from sshtrail.passwords import hash_password
from tests.support.gateway import toml_table


def auditor(name: str, password: str, **fields: object) -> str:
    """The ``[[auditors]]`` table of ``name``, who signs in with ``password`` (hashed
    here, as an admin would), with ``fields`` (``role``, ``targets``, ``terminate`` ...)."""
    return toml_table("[[auditors]]", name=name, **fields, password_hash=hash_password(password))
