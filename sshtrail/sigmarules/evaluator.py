"""Compiles a pySigma condition tree into one test of plain closures, once, at load.

pySigma parses a rule and resolves its condition (``1 of selection_*``,
``not 1 of filter_*``, ``all of them``) into a tree of AND, OR and NOT over
leaves "field equals value", with the modifiers already applied to the values:
``contains`` is a string with a wildcard at both ends, ``endswith`` one with a
wildcard in front, ``all`` an AND instead of an OR, ``windash`` an expansion of
every dash form, ``re`` a regular expression with its flags. This module turns
that tree into closures over two mappings, the event and the event lower-cased,
so that matching an event does no parsing, no lower-casing per rule and no
regular expression where a string method does:

- plain strings compare case-insensitively on the lower-cased event, except
  ``cased`` ones; the OR of many strings on one field (``Image|endswith: [...]``)
  is one ``str.endswith(tuple)``, one set lookup, or one loop over needles;
- other wildcard patterns and ``re`` run on Google RE2 (pySigma's own engine,
  which has already validated them): linear time, so no rule file can make a
  command line take seconds;
- a field absent from the event never matches, except ``field: null`` (absent
  or empty) and ``field|exists: false``;
- a keyword (a value without a field) matches anywhere in ``CommandLine`` (or the
  log source's own keyword field; one without refuses the rule).

A leaf on a field sshtrail does not fill (the log source's fields) makes the rule need
that field, unless it sits under a NOT: a filter on an unknown field can never
excuse an event, but the rule still fires as written.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple

from sigma.conditions import (
    ConditionAND,
    ConditionFieldEqualsValueExpression,
    ConditionNOT,
    ConditionOR,
    ConditionValueExpression,
)
from sigma.modifiers import reverse_modifier_mapping
from sigma.policy.regex_engine import RE2RegexEngine
from sigma.rule.detection import SigmaDetection, SigmaDetectionItem, SigmaDetections
from sigma.types import (
    SigmaBool,
    SigmaCasedString,
    SigmaExists,
    SigmaExpansion,
    SigmaNull,
    SigmaNumber,
    SigmaRegularExpression,
    SigmaString,
    SpecialChars,
)

from sshtrail.sigmarules.rules import FIELDS, Test

#: The modifiers the evaluator implements; any other refuses the rule by name.
SUPPORTED_MODIFIERS = frozenset(
    {
        "contains", "startswith", "endswith", "all", "cased", "windash", "exists",
        "re", "i", "ignorecase", "m", "multiline", "s", "dotall", "base64", "base64offset",
    }
)  # fmt: skip

#: Where a keyword (a value without a field) is looked for in a command's events.
KEYWORD_FIELD = "CommandLine"

_RE2 = RE2RegexEngine()

Kind = Literal["eq", "prefix", "suffix", "contains"]


class Unsupported(Exception):
    """The rule uses something the evaluator does not implement; ``args[0]`` says what."""


class Needle(NamedTuple):
    """A plain-string leaf, kept apart so that an OR of them is tested in one go."""

    field: str
    kind: Kind
    text: str
    cased: bool


@dataclass(frozen=True, slots=True)
class Compiled:
    """A rule's test, and the fields outside its log source's it needs to be able to fire."""

    test: Test
    needs: frozenset[str]


def unsupported_modifiers(detections: SigmaDetections) -> list[str]:
    """The modifiers of a rule's detections that the evaluator does not implement."""
    found: set[str] = set()
    pending: list[SigmaDetection | SigmaDetectionItem] = list(detections.detections.values())
    while pending:
        item = pending.pop()
        if isinstance(item, SigmaDetection):
            pending.extend(item.detection_items)
            continue
        for modifier in item.modifiers:
            name = reverse_modifier_mapping.get(modifier.__name__, modifier.__name__)
            if name not in SUPPORTED_MODIFIERS:
                found.add(name)
    return sorted(found)


def compile_condition(
    tree: Any, fields: frozenset[str] = FIELDS, keyword_field: str | None = KEYWORD_FIELD
) -> Compiled:
    """The test of one parsed condition (``SigmaCondition.parsed``) on events carrying
    ``fields``, keywords looked for in ``keyword_field``.

    Raises :class:`Unsupported` for a value type or operator it does not know, and for
    a keyword when ``keyword_field`` is None.
    """
    compiler = _Compiler(fields, keyword_field)
    return Compiled(compiler.node(tree, negated=False), frozenset(compiler.needs))


def any_of(tests: Sequence[Test]) -> Test:
    """True when one of ``tests`` is (in order, stopping at the first)."""
    if len(tests) == 1:
        return tests[0]
    frozen = tuple(tests)

    def test(event: Mapping[str, str], low: Mapping[str, str]) -> bool:
        return any(one(event, low) for one in frozen)

    return test


def all_of(tests: Sequence[Test]) -> Test:
    """True when every one of ``tests`` is (in order, stopping at the first false)."""
    if len(tests) == 1:
        return tests[0]
    frozen = tuple(tests)

    def test(event: Mapping[str, str], low: Mapping[str, str]) -> bool:
        return all(one(event, low) for one in frozen)

    return test


def _negation(inner: Test) -> Test:
    def test(event: Mapping[str, str], low: Mapping[str, str]) -> bool:
        return not inner(event, low)

    return test


class _Compiler:
    def __init__(self, fields: frozenset[str], keyword_field: str | None) -> None:
        self.needs: set[str] = set()
        self.fields = fields
        self.keyword_field = keyword_field

    def node(self, item: Any, *, negated: bool) -> Test:
        if isinstance(item, ConditionNOT):
            return _negation(self.node(item.args[0], negated=not negated))
        if isinstance(item, ConditionAND):
            return all_of([self.node(arg, negated=negated) for arg in item.args])
        if isinstance(item, ConditionOR):
            parts: list[Needle | Test] = []
            for arg in item.args:
                if isinstance(arg, ConditionFieldEqualsValueExpression | ConditionValueExpression):
                    parts += self.leaf(arg, negated=negated)
                else:
                    parts.append(self.node(arg, negated=negated))
            return _joined(parts)
        if isinstance(item, ConditionFieldEqualsValueExpression | ConditionValueExpression):
            return _joined(self.leaf(item, negated=negated))
        raise Unsupported(f"condition element {type(item).__name__} not supported")

    def leaf(
        self, item: ConditionFieldEqualsValueExpression | ConditionValueExpression, *, negated: bool
    ) -> list[Needle | Test]:
        value = item.value
        if isinstance(item, ConditionValueExpression):
            if self.keyword_field is None:
                raise Unsupported("a value without a field (keyword) not supported here")
            if isinstance(value, SigmaString):
                value = _anywhere(value)
            return _value_parts(self.keyword_field, value)
        field = item.field
        if field not in self.fields:
            # Absent, this leaf is false; under a NOT that only means a filter never
            # excuses. A value that matches absence would be true, so it always counts.
            matches_absence = isinstance(value, SigmaNull) or (
                isinstance(value, SigmaExists) and not value.exists
            )
            if matches_absence or not negated:
                self.needs.add(field)
        return _value_parts(field, value)


def _anywhere(value: SigmaString) -> SigmaString:
    """``value`` with a wildcard at both ends, as a keyword is searched for."""
    parts = list(value.s)
    if not parts or parts[0] is not SpecialChars.WILDCARD_MULTI:
        parts.insert(0, SpecialChars.WILDCARD_MULTI)
    if parts[-1] is not SpecialChars.WILDCARD_MULTI:
        parts.append(SpecialChars.WILDCARD_MULTI)
    widened = value.__class__()
    widened.s = parts
    return widened


def _value_parts(field: str, value: Any) -> list[Needle | Test]:
    if isinstance(value, SigmaExpansion):
        return [part for one in value.values for part in _value_parts(field, one)]
    if isinstance(value, SigmaString):
        return [_string(field, value)]
    if isinstance(value, SigmaRegularExpression):
        return [_regex(field, value)]
    if isinstance(value, SigmaNull):
        return [_empty(field)]
    if isinstance(value, SigmaExists):
        return [_present(field, wanted=value.exists)]
    if isinstance(value, SigmaBool):
        return [Needle(field, "eq", "true" if value.boolean else "false", cased=False)]
    if isinstance(value, SigmaNumber):
        return [Needle(field, "eq", str(value.number), cased=False)]
    raise Unsupported(f"value of type {type(value).__name__} on {field} not supported")


def _string(field: str, value: SigmaString) -> Needle | Test:
    cased = isinstance(value, SigmaCasedString)
    parts = [part if cased or not isinstance(part, str) else part.lower() for part in value.s]
    for part in parts:
        if not isinstance(part, str | SpecialChars):
            raise Unsupported(f"placeholder {part!r} in a value of {field} not supported")
    star = SpecialChars.WILDCARD_MULTI
    plain = [part for part in parts if isinstance(part, str)]
    if not parts:
        return Needle(field, "eq", "", cased)
    if len(plain) == len(parts) == 1:
        return Needle(field, "eq", plain[0], cased)
    if parts == [star]:
        return _present(field, wanted=True)
    if len(parts) == 2 and plain == [parts[1]] and parts[0] is star:
        return Needle(field, "suffix", plain[0], cased)
    if len(parts) == 2 and plain == [parts[0]] and parts[1] is star:
        return Needle(field, "prefix", plain[0], cased)
    if len(parts) == 3 and plain == [parts[1]] and parts[0] is parts[2] is star:
        return Needle(field, "contains", plain[0], cased)
    pattern = "".join(
        re.escape(part) if isinstance(part, str) else ".*" if part is star else "."
        for part in parts
    )
    compiled = _RE2.compile(pattern, re.DOTALL)
    fullmatch = compiled.fullmatch

    def test(event: Mapping[str, str], low: Mapping[str, str]) -> bool:
        found = (event if cased else low).get(field)
        return found is not None and fullmatch(found) is not None

    return test


def _regex(field: str, value: SigmaRegularExpression) -> Test:
    flags = 0
    for flag in value.flags:
        flags |= SigmaRegularExpression.sigma_to_python_flags[flag]
    search = _RE2.compile(str(value.regexp), flags).search

    def test(event: Mapping[str, str], low: Mapping[str, str]) -> bool:
        found = event.get(field)
        return found is not None and search(found) is not None

    return test


def _empty(field: str) -> Test:
    def test(event: Mapping[str, str], low: Mapping[str, str]) -> bool:
        return not event.get(field)

    return test


def _present(field: str, *, wanted: bool) -> Test:
    def test(event: Mapping[str, str], low: Mapping[str, str]) -> bool:
        return (field in event) is wanted

    return test


def _joined(parts: Sequence[Needle | Test]) -> Test:
    """The OR of ``parts``, with the needles on one field and of one kind tested together."""
    groups: dict[tuple[str, Kind, bool], list[str]] = {}
    tests: list[Test] = []
    for part in parts:
        if isinstance(part, Needle):
            groups.setdefault((part.field, part.kind, part.cased), []).append(part.text)
        else:
            tests.append(part)
    grouped = [
        _needles(field, kind, cased, texts) for (field, kind, cased), texts in groups.items()
    ]
    return any_of([*grouped, *tests])


def _needles(field: str, kind: Kind, cased: bool, texts: list[str]) -> Test:
    if kind == "eq":
        wanted = frozenset(texts)

        def equal(event: Mapping[str, str], low: Mapping[str, str]) -> bool:
            return (event if cased else low).get(field) in wanted

        return equal
    if kind == "contains":
        needles = tuple(dict.fromkeys(texts))

        def contains(event: Mapping[str, str], low: Mapping[str, str]) -> bool:
            found = (event if cased else low).get(field)
            if found is None:
                return False
            return any(needle in found for needle in needles)

        return contains
    ends = tuple(dict.fromkeys(texts))
    at_start = kind == "prefix"

    def edge(event: Mapping[str, str], low: Mapping[str, str]) -> bool:
        found = (event if cased else low).get(field)
        if found is None:
            return False
        return found.startswith(ends) if at_start else found.endswith(ends)

    return edge
