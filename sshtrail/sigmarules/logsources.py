"""The Sigma log sources the alert group fills, each with the fields its events carry.

Commands are Sigma's own ``process_creation`` on Linux, so SigmaHQ's rules work as
written. What else a session holds is ours, ``product: sshtrail`` with one category per
kind of event (docs/alerts.md, "Events other than commands"): a rule is only ever tried
on events of its own log source, so a ``process_creation`` rule never sees an
environment variable, nor a ``policy`` rule a command.
"""

from __future__ import annotations

from dataclasses import dataclass

from sshtrail.sigmarules.rules import FIELDS, PROCESS_CREATION

#: The ``product`` of sshtrail's own log sources.
PRODUCT = "sshtrail"
#: The products a ``process_creation`` rule may name (none, or Linux).
_PROCESS_PRODUCTS = (None, "linux")


@dataclass(frozen=True, slots=True)
class LogSource:
    """One kind of event offered to rules: its category, the fields it may carry, and
    where a keyword (a value without a field) is looked for (None: a rule may not use
    one, as no single field of the event is "its text")."""

    category: str
    fields: frozenset[str]
    keyword_field: str | None

    @property
    def name(self) -> str:
        """``product/category``, as ``alerts rules`` shows it."""
        product = "linux" if self.category == PROCESS_CREATION else PRODUCT
        return f"{product}/{self.category}"


#: The fields every sshtrail event carries when the session says them.
_WHO = frozenset({"Operator", "User", "Target", "TargetHost", "SourceIp", "Gateway"})

#: Every log source, by category.
SOURCES: dict[str, LogSource] = {
    source.category: source
    for source in (
        LogSource(PROCESS_CREATION, FIELDS, "CommandLine"),
        LogSource(
            "session",
            _WHO
            | {"EventType", "TargetPort", "SourcePort", "Terminal", "EndReason"}
            | {"BytesIn", "BytesOut"},
            None,
        ),
        LogSource(
            "request", _WHO | {"Request", "Command", "DestinationHost", "DestinationPort"}, None
        ),
        LogSource("environment", _WHO | {"Name", "Value", "Withheld", "Accepted"}, None),
        LogSource(
            "file_transfer",
            _WHO
            | {"Protocol", "Operation", "Path", "NewPath", "Status", "Bytes", "Size", "Sha256"},
            None,
        ),
        LogSource(
            "policy",
            _WHO | {"Action", "Rule", "Outcome", "Auditor", "Reason", "CommandLine", "Message"},
            "CommandLine",
        ),
        LogSource("login", _WHO | {"SourcePort", "Outcome", "Reason", "FailedAttempts"}, None),
    )
}

#: sshtrail's own categories, in the order the documentation lists them.
CATEGORIES = tuple(category for category in SOURCES if category != PROCESS_CREATION)


def log_source(category: str | None, product: str | None, service: str | None) -> LogSource | str:
    """The log source a rule's ``logsource`` names, or why sshtrail fills none such."""
    if product == PRODUCT:
        if category in CATEGORIES:
            return SOURCES[category]
        given = f"category {category}" if category else "no category"
        return (
            f"logsource product {PRODUCT} with {given}: its categories are {', '.join(CATEGORIES)}"
        )
    if category == PROCESS_CREATION and product in _PROCESS_PRODUCTS:
        return SOURCES[PROCESS_CREATION]
    shown = ", ".join(
        f"{name} {value}"
        for name, value in (("category", category), ("product", product), ("service", service))
        if value
    )
    return f"logsource {shown}: not Linux process creation"
