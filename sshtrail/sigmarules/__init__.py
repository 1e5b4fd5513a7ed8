"""The alert group's rule engine: Sigma rules loaded from files, matched against one command.

A pure library: it reads rule files and nothing else. pySigma parses and
validates each file; :mod:`~sshtrail.sigmarules.evaluator` compiles its
condition once into plain closures; :class:`RuleSet.match` tries every active
rule of an event's log source on it (Sigma field name -> value). Why not a pySigma backend or an
evaluator package: docs/decisions.md, "Sigma rules".
"""

from sshtrail.sigmarules.loader import load_rule_file, load_rules
from sshtrail.sigmarules.logsources import CATEGORIES, PRODUCT, SOURCES, LogSource
from sshtrail.sigmarules.rules import FIELDS, PROCESS_CREATION, Rule, RuleSet, RuleStatus

__all__ = [
    "CATEGORIES",
    "FIELDS",
    "PROCESS_CREATION",
    "PRODUCT",
    "SOURCES",
    "LogSource",
    "Rule",
    "RuleSet",
    "RuleStatus",
    "load_rule_file",
    "load_rules",
]
