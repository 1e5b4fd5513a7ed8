"""What the policy file's two kinds of table share: their errors, names, globs, lists.

``[[rule]]`` (:mod:`sshtrail.commandpolicy`) and ``[[moderation]]``
(:mod:`sshtrail.moderationpolicy`) live in one TOML file (``policy.file``) and are read
the same way: a mistake is a :class:`PolicyError` naming the file, the table and the key.
"""

from __future__ import annotations

import fnmatch
import re
from typing import Any

from sshtrail.errors import ConfigError

_NAME = re.compile(r"[A-Za-z0-9._-]{1,64}")


class PolicyError(ConfigError):
    """A policy file that cannot be used, and why (file, rule, key)."""


def tables(document: dict[str, Any], key: str, source: str) -> list[dict[str, Any]]:
    """The ``[[key]]`` tables of the document (none: an empty list)."""
    found = document.get(key, [])
    if not isinstance(found, list) or not all(isinstance(t, dict) for t in found):
        raise PolicyError(f"{source}: {key!r} must be tables written [[{key}]]")
    return found


def name_of(table: dict[str, Any], where: str) -> str:
    name = table.get("name")
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise PolicyError(f"{where}: 'name' must be 1-64 letters, digits, '.', '_' or '-'")
    return name


def message_of(table: dict[str, Any], where: str) -> str:
    message = table.get("message", "")
    if not isinstance(message, str) or len(message) > 500 or not message.isprintable():
        raise PolicyError(f"{where}: 'message' must be printable text of at most 500 characters")
    return message


def strings(table: dict[str, Any], key: str, where: str, required: bool = False) -> list[str]:
    value = table.get(key)
    if value is None and not required:
        return []
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise PolicyError(f"{where}: {key!r} must be a list of strings, not empty")
    return value


def globs(patterns: tuple[str, ...]) -> re.Pattern[str]:
    """Shell-style globs (``fnmatch``, case-sensitive) as one regular expression."""
    return re.compile("|".join(f"(?:{fnmatch.translate(glob)})" for glob in patterns))
