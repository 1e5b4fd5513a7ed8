"""Which sessions an auditor may see: shell-style patterns on operator and target.

A session is in scope when its operator matches one of the operator patterns
and its target one of the target patterns. Operator and target names are
``[A-Za-z0-9._-]`` (the settings enforce it), so a pattern is those
characters with ``*`` (any run) and ``?`` (any one): nothing else needs
escaping, and matching is exact and case-sensitive everywhere -- in Python,
in SQLite (``GLOB``) and in PostgreSQL (``LIKE`` with ``_`` escaped).

A session whose operator or target is unknown (a refused login names no
target) is in scope only for ``*``.
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass

from sqlalchemy import ColumnElement, and_, false, or_, true
from sqlalchemy.sql.elements import ColumnClause

from sshtrail.settings import SCOPE_PATTERN

_PATTERN = re.compile(SCOPE_PATTERN)


@dataclass(frozen=True, slots=True)
class Scope:
    operators: tuple[str, ...] = ("*",)
    targets: tuple[str, ...] = ("*",)

    def __post_init__(self) -> None:
        for pattern in (*self.operators, *self.targets):
            if not _PATTERN.match(pattern):
                raise ValueError(f"scope pattern {pattern!r} is not names with * and ?")

    @property
    def everything(self) -> bool:
        return "*" in self.operators and "*" in self.targets

    def allows(self, operator: str | None, target: str | None) -> bool:
        return _matches(self.operators, operator) and _matches(self.targets, target)

    def condition(
        self, dialect: str, operator: ColumnClause[str], target: ColumnClause[str]
    ) -> ColumnElement[bool]:
        """The SQL that keeps rows in scope, for columns of a table on ``dialect``."""
        return and_(
            _column_matches(dialect, operator, self.operators),
            _column_matches(dialect, target, self.targets),
        )


def _matches(patterns: tuple[str, ...], name: str | None) -> bool:
    if "*" in patterns:
        return True
    return name is not None and any(fnmatch.fnmatchcase(name, p) for p in patterns)


def _column_matches(
    dialect: str, column: ColumnClause[str], patterns: tuple[str, ...]
) -> ColumnElement[bool]:
    if "*" in patterns:
        return true()
    if not patterns:
        return false()
    if dialect == "sqlite":  # GLOB is case-sensitive; LIKE is not, on SQLite
        return or_(*(column.op("GLOB", is_comparison=True)(p) for p in patterns))
    likes = [p.replace("_", "\\_").replace("*", "%").replace("?", "_") for p in patterns]
    return or_(*(column.like(like, escape="\\") for like in likes))
