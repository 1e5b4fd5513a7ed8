"""Command policy rules as the gateway's policy file holds them: ``[[rule]]`` tables of TOML."""

from __future__ import annotations

from tests.support.gateway import toml_table


def policy_rule(name: str, action: str, match: list[str], message: str, **scope: list[str]) -> str:
    """One ``[[rule]]`` table, after a blank line: ``action`` ("reject" or "warn") for the
    commands ``match`` names, telling the operator ``message``; ``scope`` narrows it
    (``targets``, ``operators``), so a test names only what it is about."""
    return "\n" + toml_table(
        "[[rule]]", name=name, action=action, match=match, **scope, message=message
    )
