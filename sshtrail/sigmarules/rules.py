"""What the rule engine hands out: the fields it knows, a rule's status, active rules, a set.

An event is a mapping of Sigma field name to string value, built by the alert
group from one command read in a session, or from another of its events (its log
source's category given beside it: :mod:`sshtrail.sigmarules.logsources`); a field
the group could not fill is absent, never an empty string. :class:`RuleSet`
lower-cases the event once and tries every active rule of its log source on it; a
rule's test is the closure tree :mod:`sshtrail.sigmarules.evaluator` compiled when
the rule was loaded.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Literal

#: Sigma's log source category of commands (``product: linux``).
PROCESS_CREATION = "process_creation"

#: The Sigma ``process_creation`` fields the alert group fills from a session:
#:
#: - ``CommandLine``: the command line as the shell ran it;
#: - ``Image``: the program's path, ``/usr/bin/NAME`` for a bare name;
#: - ``ParentImage``: the shell or wrapper that starts it (``sshtrail/alertevents.py``);
#: - ``User``: the target account.
#:
#: ``CurrentDirectory`` is not filled yet (the prompt shows it only sometimes, and the
#: reader does not pass it on): rules deciding on it are ``needs-field``.
#: ``ParentCommandLine`` is not among them: the parent is the session's shell,
#: whose own command line the gateway never sees (``-bash``? ``bash -i``?), and a
#: guess would make rules such as "interactive bash spawns base64" fire on every
#: command or on none. A rule that needs any other field is reported as
#: ``needs-field``, never loaded to silently match nothing.
FIELDS: frozenset[str] = frozenset({"CommandLine", "Image", "ParentImage", "User"})

#: A compiled test: the event as given, and the same event lower-cased.
Test = Callable[[Mapping[str, str], Mapping[str, str]], bool]


@dataclass(frozen=True, slots=True)
class RuleStatus:
    """What became of one rule file.

    ``reason`` is ``""`` for an active rule, ``"needs field LogonId"`` (or
    ``"needs fields A, B"``) for one that tests a field sshtrail cannot fill, and
    ``"invalid: ..."`` for one refused (unreadable, not a rule, not process
    creation, a modifier the evaluator does not know, ...). ``logsource`` is the log
    source it is tried on (``linux/process_creation``, ``sshtrail/environment``),
    ``""`` when it has none sshtrail fills.
    """

    path: str
    rule_id: str | None
    title: str | None
    status: Literal["active", "needs-field", "invalid"]
    reason: str
    logsource: str = ""


@dataclass(frozen=True, slots=True)
class Rule:
    """An active rule: what an alert credits (DRL 1.1: title, id, author) and its test.

    ``level`` is Sigma's level in lower case (``"high"``), ``""`` when the rule
    gives none; ``tags`` as written (``"attack.t1059"``); ``category`` the log source
    whose events it is tried on (``process_creation``, or one of sshtrail's).
    """

    id: str
    title: str
    level: str
    tags: tuple[str, ...]
    author: str
    path: str
    test: Test = field(repr=False, compare=False)
    category: str = PROCESS_CREATION

    def matches(self, event: Mapping[str, str]) -> bool:
        """Whether this rule fires on ``event`` (Sigma field name -> value)."""
        return self.test(event, lowered(event))


@dataclass(frozen=True)
class RuleSet:
    """The active rules of a folder, and the status of every file in it."""

    rules: tuple[Rule, ...]
    statuses: tuple[RuleStatus, ...]

    def match(self, event: Mapping[str, str], category: str = PROCESS_CREATION) -> list[Rule]:
        """The rules of log source ``category`` that fire on ``event``, in the order they
        were loaded; a rule of another log source is never tried."""
        rules = self.by_category.get(category)
        if not rules:
            return []
        low = lowered(event)
        return [rule for rule in rules if rule.test(event, low)]

    @cached_property
    def by_category(self) -> dict[str, tuple[Rule, ...]]:
        """The active rules of each log source category, in the order they were loaded."""
        grouped: dict[str, list[Rule]] = {}
        for rule in self.rules:
            grouped.setdefault(rule.category, []).append(rule)
        return {category: tuple(rules) for category, rules in grouped.items()}


def lowered(event: Mapping[str, str]) -> dict[str, str]:
    """``event`` with its values lower-cased, for Sigma's case-insensitive strings."""
    return {name: value.lower() for name, value in event.items()}
