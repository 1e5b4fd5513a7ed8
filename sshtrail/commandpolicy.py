"""Command policy: which commands an operator may run on a target, decided before they run.

Rules live in a TOML file (``policy.file``; docs/policy.md)::

    [[rule]]
    name = "no-history-wipe"
    action = "reject"            # reject | review | warn | accept
    match = ["history -c", "re:\\brm\\b.*_history\\b"]
    operators = ["*"]            # globs, as the console's scopes
    targets = ["prod-*"]
    message = "wiping shell history is not allowed here"

The first rule, in file order, whose operators and targets globs match and one of whose
``match`` entries matches decides; none matching is ``accept``. A plain entry is words
that must appear, consecutive and whole, in one simple command of the line as the shell
splits it (:mod:`sshtrail.shellwords`: ``;``, ``&&``, ``|``, ``$(...)``, backticks,
``sh -c``, ``eval``), quotes removed, so a quoted string is one word and ``echo "rm"``
does not run ``rm``. An entry ``re:PATTERN`` is a Python regular expression searched in
the whole line as typed. ``ignore_case = true`` makes both case-insensitive.

The same file's ``[[moderation]]`` tables name the sessions that run only while a
moderator watches (:mod:`sshtrail.moderationpolicy`, docs/moderation.md).

A file that cannot be read is an error naming the file, the rule and the key
(:class:`PolicyError`); the gateway then keeps the rules it had (docs/policy.md).
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from sshtrail.moderationpolicy import Moderation, parse_moderation
from sshtrail.policyfile import PolicyError, globs, message_of, name_of, strings, tables
from sshtrail.shellwords import commands

Action = Literal["reject", "review", "warn", "accept"]
ACTIONS: tuple[Action, ...] = ("reject", "review", "warn", "accept")
#: Longest rule file read, and most rules and entries taken: a policy is written by
#: people, and every Enter is checked against it.
MAX_FILE_BYTES = 1 << 20
MAX_RULES = 2000
MAX_ENTRIES = 200
_KEYS = {"name", "action", "match", "operators", "targets", "message", "ignore_case"}


@dataclass(frozen=True, slots=True)
class Entry:
    """One ``match`` entry: whole words, or a regular expression (``re:``)."""

    text: str
    words: tuple[str, ...] = ()
    pattern: re.Pattern[str] | None = None

    def found_in(self, line: str, split: _Split, fold: bool) -> bool:
        if self.pattern is not None:
            return self.pattern.search(line) is not None
        wanted = tuple(w.casefold() for w in self.words) if fold else self.words
        if wanted[0] not in (split.folded if fold else split.words):
            return False  # most entries, at the cost of a set lookup
        size = len(wanted)
        for words in split.commands:
            seen = [w.casefold() for w in words] if fold else words
            for at in range(len(seen) - size + 1):
                if all(_same(seen[at + k], wanted[k]) for k in range(size)):
                    return True
        return False


class _Split:
    """A line's simple commands (:func:`~sshtrail.shellwords.commands`), and every word
    in them, as it is and case-folded (made when first needed)."""

    def __init__(self, line: str) -> None:
        self.commands = commands(line)
        self.words = {word for found in self.commands for word in found}
        self.words |= {_base(word) for word in self.words if "/" in word}
        self._folded: set[str] | None = None

    @property
    def folded(self) -> set[str]:
        if self._folded is None:
            self._folded = {word.casefold() for word in self.words}
        return self._folded


@dataclass(frozen=True, slots=True)
class Rule:
    name: str
    action: Action
    entries: tuple[Entry, ...]
    operators: tuple[str, ...] = ("*",)
    targets: tuple[str, ...] = ("*",)
    message: str = ""
    ignore_case: bool = False
    #: ``operators`` and ``targets`` as one regular expression each (globs translated).
    _operators: re.Pattern[str] = field(init=False, repr=False, compare=False)
    _targets: re.Pattern[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_operators", globs(self.operators))
        object.__setattr__(self, "_targets", globs(self.targets))

    def applies_to(self, operator: str, target: str) -> bool:
        return bool(self._operators.match(operator) and self._targets.match(target))

    def matching(self, line: str, split: _Split) -> Entry | None:
        for entry in self.entries:
            if entry.found_in(line, split, self.ignore_case):
                return entry
        return None


@dataclass(frozen=True, slots=True)
class Decision:
    """What a policy says of one command: its action, and the rule and entry that
    decided (None: no rule matched, accepted)."""

    action: Action
    rule: Rule | None = None
    entry: Entry | None = None

    @property
    def message(self) -> str:
        """What the operator is shown."""
        if self.rule is None:
            return ""
        return self.rule.message or f"this command is not allowed here (rule {self.rule.name})"

    def describe(self) -> str:
        """One line for a person: the action, and which rule and entry decided."""
        if self.rule is None or self.entry is None:
            return "accept (no rule matches)"
        return f"{self.action} by rule {self.rule.name} (matched: {self.entry.text})"


@dataclass(frozen=True, slots=True)
class Policy:
    rules: tuple[Rule, ...] = ()
    #: Where the rules came from, for messages.
    source: str = "(no policy)"
    moderations: tuple[Moderation, ...] = ()

    def moderation(self, operator: str, target: str) -> Moderation | None:
        """The first ``[[moderation]]`` table covering ``operator`` on ``target``."""
        for moderation in self.moderations:
            if moderation.applies_to(operator, target):
                return moderation
        return None

    def decide(self, operator: str, target: str, line: str) -> Decision:
        """What the first matching rule says of ``line``, run by ``operator`` on ``target``."""
        split: _Split | None = None
        for rule in self.rules:
            if not rule.applies_to(operator, target):
                continue
            if split is None:
                split = _Split(line)
            entry = rule.matching(line, split)
            if entry is not None:
                return Decision(rule.action, rule, entry)
        return Decision("accept")

    def covers(self, target: str) -> bool:
        """Whether any rule but ``accept`` may apply to ``target``."""
        return any(r.action != "accept" and r._targets.match(target) for r in self.rules)


def _base(word: str) -> str:
    """A command path's name (``/usr/bin/rm`` is ``rm``); a word without a slash as it is."""
    return word.rsplit("/", 1)[-1] or word


def _same(word: str, wanted: str) -> bool:
    """A word of the line is an entry's word: the same, or a path to it (``/bin/rm``
    is ``rm``, ``./rm`` too); an entry that is a path matches only that path."""
    return word == wanted or ("/" in word and "/" not in wanted and _base(word) == wanted)


def load_policy(path: Path) -> Policy:
    """The rules of the TOML file at ``path``; :class:`PolicyError` saying what is wrong."""
    try:
        with path.open("rb") as file:
            raw = file.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise PolicyError(f"cannot read the policy file {path}: {exc.strerror}") from None
    if len(raw) > MAX_FILE_BYTES:
        raise PolicyError(f"{path}: larger than {MAX_FILE_BYTES} bytes")
    return parse_policy(raw, str(path))


def parse_policy(raw: bytes, source: str) -> Policy:
    """The rules of a policy file's bytes; ``source`` names it in errors."""
    try:
        document = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise PolicyError(f"{source}: not UTF-8 text (byte {exc.start})") from None
    except tomllib.TOMLDecodeError as exc:
        raise PolicyError(f"{source}: not valid TOML: {exc}") from None
    unknown = set(document) - {"rule", "moderation"}
    if unknown:
        raise PolicyError(
            f"{source}: unknown top-level key {sorted(unknown)[0]!r} "
            "(only [[rule]] and [[moderation]])"
        )
    found = tables(document, "rule", source)
    if len(found) > MAX_RULES:
        raise PolicyError(f"{source}: {len(found)} rules, more than {MAX_RULES}")
    rules: list[Rule] = []
    names: set[str] = set()
    for number, table in enumerate(found, start=1):
        rule = _rule(table, f"{source}: rule {number}")
        if rule.name in names:
            raise PolicyError(f"{source}: rule {number}: the name {rule.name!r} is used twice")
        names.add(rule.name)
        rules.append(rule)
    moderations: list[Moderation] = []
    found = tables(document, "moderation", source)
    if len(found) > MAX_RULES:
        raise PolicyError(f"{source}: {len(found)} moderation tables, more than {MAX_RULES}")
    for number, table in enumerate(found, start=1):
        moderation = parse_moderation(table, f"{source}: moderation {number}")
        if moderation.name in names:
            raise PolicyError(
                f"{source}: moderation {number}: the name {moderation.name!r} is used twice"
            )
        names.add(moderation.name)
        moderations.append(moderation)
    return Policy(tuple(rules), source, tuple(moderations))


def _rule(table: dict[str, Any], where: str) -> Rule:
    unknown = set(table) - _KEYS
    if unknown:
        raise PolicyError(f"{where}: unknown key {sorted(unknown)[0]!r}")
    name = name_of(table, where)
    where = f"{where} ({name})"
    action = table.get("action")
    if action not in ACTIONS:
        raise PolicyError(f"{where}: 'action' must be one of {', '.join(ACTIONS)}")
    ignore_case = table.get("ignore_case", False)
    if not isinstance(ignore_case, bool):
        raise PolicyError(f"{where}: 'ignore_case' must be true or false")
    match = strings(table, "match", where, required=True)
    if len(match) > MAX_ENTRIES:
        raise PolicyError(f"{where}: more than {MAX_ENTRIES} 'match' entries")
    message = message_of(table, where)
    return Rule(
        name=name,
        action=action,
        entries=tuple(_entry(text, where, ignore_case) for text in match),
        operators=tuple(strings(table, "operators", where) or ["*"]),
        targets=tuple(strings(table, "targets", where) or ["*"]),
        message=message,
        ignore_case=ignore_case,
    )


def _entry(text: str, where: str, ignore_case: bool) -> Entry:
    if text.startswith("re:"):
        try:
            pattern = re.compile(text[3:], re.IGNORECASE if ignore_case else 0)
        except re.error as exc:
            raise PolicyError(f"{where}: {text!r} is not a regular expression: {exc}") from None
        return Entry(text, pattern=pattern)
    words = [w for found in commands(text) for w in found]
    if not words:
        raise PolicyError(f"{where}: the entry {text!r} has no words")
    return Entry(text, words=tuple(words))
