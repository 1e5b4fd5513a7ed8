"""Moderated sessions' rules: the ``[[moderation]]`` tables of the policy file.

::

    [[moderation]]
    name = "payments"
    operators = ["*"]
    targets = ["pay-*"]
    moderators = ["alice", "group:dba"]   # console auditors, or their groups
    count = 1                             # how many must be present
    on_leave = "pause"                    # pause | terminate
    wait_s = 300                          # how long a session waits for them

The first table, in file order, whose globs match a session decides it; what the gateway
does with it is ``producer/moderation.py`` (docs/moderation.md).
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any, Literal

from sshtrail import policyfile
from sshtrail.policyfile import PolicyError

#: An auditor's name, as ``auditors.name`` allows it.
_AUDITOR = re.compile(r"[A-Za-z0-9._@+-]{1,128}")
_MODERATION_KEYS = {
    "name",
    "operators",
    "targets",
    "moderators",
    "count",
    "on_leave",
    "wait_s",
    "message",
}
OnLeave = Literal["pause", "terminate"]
#: The most moderators a session may need, and the longest wait for them (a day).
MAX_COUNT = 10
MAX_WAIT_S = 86_400
#: A ``moderators`` entry naming a console group (``auditors.groups``), not an auditor.
GROUP_PREFIX = "group:"


@dataclass(frozen=True, slots=True)
class Moderation:
    """A ``[[moderation]]`` table: sessions of ``operators`` to ``targets`` start only
    while ``count`` of ``moderators`` watch, and pause or end when they are fewer."""

    name: str
    moderators: tuple[str, ...]
    operators: tuple[str, ...] = ("*",)
    targets: tuple[str, ...] = ("*",)
    count: int = 1
    on_leave: OnLeave = "pause"
    wait_s: float = 300.0
    message: str = ""
    _operators: re.Pattern[str] = field(init=False, repr=False, compare=False)
    _targets: re.Pattern[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_operators", policyfile.globs(self.operators))
        object.__setattr__(self, "_targets", policyfile.globs(self.targets))

    def applies_to(self, operator: str, target: str) -> bool:
        return bool(self._operators.match(operator) and self._targets.match(target))

    def may_moderate(self, name: str, groups: Collection[str]) -> bool:
        """Whether the auditor ``name`` (in console ``groups``) is one of the moderators."""
        for entry in self.moderators:
            if entry.startswith(GROUP_PREFIX):
                if entry[len(GROUP_PREFIX) :] in groups:
                    return True
            elif entry == name:
                return True
        return False


def parse_moderation(table: dict[str, Any], where: str) -> Moderation:
    """One ``[[moderation]]`` table; :class:`PolicyError` naming ``where`` and the key."""
    unknown = set(table) - _MODERATION_KEYS
    if unknown:
        raise PolicyError(f"{where}: unknown key {sorted(unknown)[0]!r}")
    name = policyfile.name_of(table, where)
    where = f"{where} ({name})"
    moderators = policyfile.strings(table, "moderators", where, required=True)
    for entry in moderators:
        bare = entry.removeprefix(GROUP_PREFIX)
        if not _AUDITOR.fullmatch(bare):
            raise PolicyError(
                f"{where}: {entry!r} in 'moderators' is neither an auditor's name nor "
                f"{GROUP_PREFIX}NAME"
            )
    count = table.get("count", 1)
    if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= MAX_COUNT:
        raise PolicyError(f"{where}: 'count' must be a whole number from 1 to {MAX_COUNT}")
    on_leave = table.get("on_leave", "pause")
    if on_leave not in ("pause", "terminate"):
        raise PolicyError(f"{where}: 'on_leave' must be pause or terminate")
    wait_s = table.get("wait_s", 300)
    if isinstance(wait_s, bool) or not isinstance(wait_s, int | float):
        raise PolicyError(f"{where}: 'wait_s' must be a number of seconds")
    if not 1 <= wait_s <= MAX_WAIT_S:
        raise PolicyError(f"{where}: 'wait_s' must be from 1 to {MAX_WAIT_S} seconds")
    return Moderation(
        name=name,
        moderators=tuple(moderators),
        operators=tuple(policyfile.strings(table, "operators", where) or ["*"]),
        targets=tuple(policyfile.strings(table, "targets", where) or ["*"]),
        count=count,
        on_leave=on_leave,
        wait_s=float(wait_s),
        message=policyfile.message_of(table, where),
    )
