"""Reads a folder of Sigma rule files into a :class:`RuleSet`, one status per file.

Each file is read (at most :data:`MAX_RULE_BYTES`), parsed and validated by
pySigma, checked for what sshtrail can evaluate (a ``process_creation``
logsource on Linux or no product, or one of sshtrail's own: ``product: sshtrail``
and a category of :mod:`~sshtrail.sigmarules.logsources`, the attribution DRL 1.1 asks an alert to
carry, modifiers the evaluator implements, fields sshtrail fills) and compiled
once. A file that fails any step gets its reason in its :class:`RuleStatus` and
never stops the others: nothing a rule file holds makes :func:`load_rules`
raise; only a folder that cannot be listed does (:class:`ConfigError`).
"""

from __future__ import annotations

from pathlib import Path

import yaml
from sigma.exceptions import SigmaError
from sigma.rule import SigmaRule

from sshtrail.errors import ConfigError
from sshtrail.sigmarules.evaluator import (
    Unsupported,
    any_of,
    compile_condition,
    unsupported_modifiers,
)
from sshtrail.sigmarules.logsources import log_source
from sshtrail.sigmarules.rules import Rule, RuleSet, RuleStatus

#: A SigmaHQ rule is 1-5 KiB; anything far larger is not a rule we should parse.
MAX_RULE_BYTES = 256 * 1024

#: The names a rule file has; other files in the folder (a README, a LICENSE) are not rules.
RULE_SUFFIXES = (".yml", ".yaml")


def load_rules(folder: Path) -> RuleSet:
    """Every rule file under ``folder`` (recursively, in path order), loaded or refused.

    A second file with an id already loaded is refused: alerts name rules by id.
    """
    try:
        if not folder.is_dir():
            raise NotADirectoryError(f"{folder} is not a folder")
        paths = sorted(
            path
            for path in folder.rglob("*")
            if path.name.endswith(RULE_SUFFIXES) and not path.is_dir()
        )
    except OSError as error:
        raise ConfigError(f"cannot read the rules folder: {error}", key="alerts.rules") from error
    rules: list[Rule] = []
    statuses: list[RuleStatus] = []
    first_path: dict[str, str] = {}
    for path in paths:
        rule, status = load_rule_file(path)
        if rule is not None and rule.id in first_path:
            status = _invalid(
                str(path),
                f"id {rule.id} already used by {first_path[rule.id]}",
                rule.title,
                rule.id,
            )
        elif rule is not None:
            first_path[rule.id] = rule.path
            rules.append(rule)
        statuses.append(status)
    return RuleSet(tuple(rules), tuple(statuses))


def load_rule_file(path: Path) -> tuple[Rule | None, RuleStatus]:
    """One rule file: the rule if it is active, and its status in every case."""
    where = str(path)
    try:
        with path.open("rb") as file:
            data = file.read(MAX_RULE_BYTES + 1)
    except OSError as error:
        return None, _invalid(where, f"cannot read the file: {error.strerror or error}")
    if len(data) > MAX_RULE_BYTES:
        return None, _invalid(where, f"larger than {MAX_RULE_BYTES} bytes: not a rule")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None, _invalid(where, "not UTF-8 text")
    try:
        parsed = SigmaRule.from_yaml(text)
    except yaml.YAMLError as error:
        return None, _invalid(where, f"not one YAML document: {_one_line(error)}")
    except SigmaError as error:
        return None, _invalid(where, _one_line(error))
    except Exception as error:  # a file is outside data: no error of its may stop the others
        return None, _invalid(
            where, f"not a Sigma rule ({type(error).__name__}: {_one_line(error)})"
        )
    rule_id = str(parsed.id) if parsed.id is not None else None
    title = parsed.title or None
    try:
        return _checked(where, parsed, rule_id, title)
    except Unsupported as error:
        return None, _invalid(where, str(error), title, rule_id)
    except SigmaError as error:
        return None, _invalid(where, _one_line(error), title, rule_id)
    except Exception as error:  # as above: pySigma parses the condition lazily
        return None, _invalid(
            where, f"condition not understood ({type(error).__name__}: {_one_line(error)})",
            title, rule_id,
        )  # fmt: skip


def _checked(
    where: str, parsed: SigmaRule, rule_id: str | None, title: str | None
) -> tuple[Rule | None, RuleStatus]:
    """The checks after pySigma's: ours to evaluate, credited, compiled."""
    given = parsed.logsource
    source = log_source(given.category, given.product, given.service)
    if isinstance(source, str):
        return None, _invalid(where, source, title, rule_id)
    # DRL 1.1: every alert credits the rule's title, id and author.
    author = parsed.author
    if rule_id is None or title is None or not author:
        missing = [
            name
            for name, value in (("id", rule_id), ("title", title), ("author", author))
            if not value
        ]
        return None, _invalid(
            where,
            f"no {' or '.join(missing)}: an alert must credit the rule (DRL 1.1)",
            title,
            rule_id,
        )
    modifiers = unsupported_modifiers(parsed.detection)
    if modifiers:
        plural = "s" if len(modifiers) > 1 else ""
        raise Unsupported(f"modifier{plural} {', '.join(modifiers)} not supported")
    compiled = [
        compile_condition(condition.parsed, source.fields, source.keyword_field)
        for condition in parsed.detection.parsed_condition
    ]
    needs = sorted(set().union(*(one.needs for one in compiled)))
    if needs:
        plural = "s" if len(needs) > 1 else ""
        reason = f"needs field{plural} {', '.join(needs)}"
        return None, RuleStatus(where, rule_id, title, "needs-field", reason, source.name)
    rule = Rule(
        id=rule_id,
        title=title,
        level=parsed.level.name.lower() if parsed.level is not None else "",
        tags=tuple(str(tag) for tag in parsed.tags),
        author=author,
        path=where,
        # Sigma: a rule with several conditions fires when any of them holds.
        test=any_of([one.test for one in compiled]),
        category=source.category,
    )
    return rule, RuleStatus(where, rule_id, title, "active", "", source.name)


def _invalid(
    where: str, reason: str, title: str | None = None, rule_id: str | None = None
) -> RuleStatus:
    return RuleStatus(where, rule_id, title, "invalid", f"invalid: {reason}")


def _one_line(error: BaseException) -> str:
    """An error's message on one line, short enough for a status table."""
    text = " ".join(str(error).split())
    return text if len(text) <= 300 else text[:297] + "..."
