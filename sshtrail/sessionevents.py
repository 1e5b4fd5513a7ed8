"""What a Sigma rule of ``product: sshtrail`` is matched against: a session's events other
than its commands, each under its log source's category (docs/alerts.md).

Commands are :mod:`sshtrail.alertevents` (``process_creation``). Here, from the events
of the recording (:mod:`sshtrail.events`):

* ``session`` -- its start and its end (``EventType`` ``start`` or ``end``);
* ``request`` -- each channel request: a shell, an exec request, a subsystem, a
  forwarded TCP connection (``direct-tcpip``, its destination split into host and port);
* ``environment`` -- each variable the client sent, its value absent when the gateway
  withheld it (``gateway.secret_env``);
* ``policy`` -- each decision of the command policy (a ``policy`` notice);
* ``login`` -- a login or session the gateway refused (recorded as a session that
  ends ``refused: ...`` before any request), and a login that succeeded after failed
  attempts (an ``auth`` notice, or a login that opened no session).

File transfers (``file_transfer``) are read from the channel's bytes, by
:mod:`sshtrail.transferwatch`. Every event carries who and where as far as the session's
start says it (``Operator``, ``User``, ``Target``, ``TargetHost``, ``SourceIp``,
``Gateway``); a session taken over mid-way knows only what the store's row gives.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass

from sshtrail.events import End, Env, Event, Exec, Notice, Start
from sshtrail.fileops import FileOperation, text
from sshtrail.transferwatch import TransferWatch

#: How many of a chunk's events a rule may be offered at most (a client that sends
#: thousands of variables).
MAX_EVENTS_PER_CHUNK = 256
#: What the gateway writes before the reason of a session it refused.
REFUSED = "refused: "
#: What a login that opened no session after failed attempts ends with.
NO_SESSION = "login with no session, "

#: ``reject by rule R: LINE``, ``warn by rule R: LINE``, ``review by rule R approved by A
#: after 3.0 s: REASON: LINE``, ``reject by rule R after review denied ...: LINE``. The
#: reason an auditor gave and the line are both free text: the gateway writes the reason
#: as a JSON string, which ends where its closing quote does; in recordings made before
#: that, the first ``: `` after the time ends the reason.
_POLICY = re.compile(
    r"(?P<action>\w+) by rule (?P<rule>\S+?)(?: after review)?"
    r"(?: (?P<outcome>approved|denied|timed out|cancelled|ended|unavailable)"
    r"(?: by (?P<auditor>.+?))? after [0-9.]+ s"
    r'(?:: (?:(?P<quoted>"(?:[^"\\]|\\.)*")|(?P<reason>.*?)))?)?'
    r": (?P<line>.*)",
    re.DOTALL,
)
#: The policy could not be read: every command is refused.
_UNREADABLE = "rejected: the command policy cannot be read: "
_ATTEMPTS = re.compile(r"\b([0-9]+) failed attempts?\b")


@dataclass(frozen=True, slots=True)
class SourcedEvent:
    """One event for rules of log source ``category``; ``t`` when it happened (ns since
    the session's start), ``index`` its place among its chunk's events (which keeps two
    alerts of one rule in one chunk apart), ``summary`` the one line an alert shows."""

    category: str
    t: int
    index: int
    fields: dict[str, str]
    summary: str


class SessionEvents:
    """Reads one session's events, in order, into :class:`SourcedEvent` values."""

    def __init__(self) -> None:
        #: Who and where, from the session's start (or the store's row).
        self.who: dict[str, str] = {}
        #: Whether a channel request was made: an end ``refused: ...`` after one is
        #: the policy's, not a refused login.
        self.requested = False
        self.transfers = TransferWatch()

    def know(self, operator: str | None, target: str | None, user: str | None) -> None:
        """What the store's row says, for a session taken over mid-way."""
        for name, value in (("Operator", operator), ("Target", target), ("User", user)):
            if value:
                self.who[name] = value

    def read(self, events: Sequence[Event]) -> list[SourcedEvent]:
        """The events ``events`` (one chunk's, in order) offer to rules."""
        found: list[SourcedEvent] = []
        for index, event in enumerate(events):
            one = self._one(event, index)
            if one is not None and len(found) < MAX_EVENTS_PER_CHUNK:
                found.append(one)
        for index, operation in enumerate(self.transfers.read(events)):
            if len(found) < MAX_EVENTS_PER_CHUNK:
                found.append(self._transfer(operation, index))
        return found

    def _one(self, event: Event, index: int) -> SourcedEvent | None:
        if isinstance(event, Start):
            self._start(event)
            fields = {"EventType": "start", "Terminal": event.term, "TargetPort": str(event.port)}
            return self._event("session", event.t, index, fields, "session start")
        if isinstance(event, Exec):
            self.requested = True
            return self._request(event, index)
        if isinstance(event, Env):
            return self._env(event, index)
        if isinstance(event, Notice):
            return self._notice(event, index)
        if isinstance(event, End):
            return self._end(event, index)
        return None

    def _start(self, start: Start) -> None:
        address, _, port = start.client.rpartition(":")
        given = {
            "Operator": start.operator,
            "User": start.user,
            "Target": start.target,
            "TargetHost": start.host,
            "SourceIp": address.strip("[]"),
            "SourcePort": port,
            "Gateway": start.gateway,
        }
        self.who = {name: value for name, value in given.items() if value}

    def _request(self, event: Exec, index: int) -> SourcedEvent:
        command = text(event.command)
        fields = {"Request": event.mode, "Command": command}
        if event.mode == "direct-tcpip":
            host, _, port = command.rpartition(":")
            fields |= {"DestinationHost": host.strip("[]"), "DestinationPort": port}
        summary = f"{event.mode} {command}" if command else event.mode
        return self._event("request", event.t, index, fields, summary)

    def _env(self, event: Env, index: int) -> SourcedEvent:
        name = text(event.name)
        fields = {
            "Name": name,
            "Withheld": _flag(event.value is None),
            "Accepted": _flag(event.accepted),
        }
        if event.value is not None:
            fields["Value"] = text(event.value)
        shown = f"{name}={fields['Value']}" if event.value is not None else f"{name} (withheld)"
        return self._event("environment", event.t, index, fields, shown)

    def _notice(self, event: Notice, index: int) -> SourcedEvent | None:
        if event.code == "policy":
            fields = _policy(event.text)
            return self._event("policy", event.t, index, fields, event.text)
        if event.code == "auth":
            return self._login("succeeded", event.text, event.t, index)
        return None

    def _end(self, event: End, index: int) -> SourcedEvent:
        if event.reason.startswith(REFUSED) and not self.requested:
            return self._login("refused", event.reason[len(REFUSED) :], event.t, index)
        if event.reason.startswith(NO_SESSION):
            return self._login("succeeded", event.reason[len(NO_SESSION) :], event.t, index)
        fields = {
            "EventType": "end",
            "EndReason": event.reason,
            "BytesIn": str(event.bytes_in),
            "BytesOut": str(event.bytes_out),
        }
        return self._event("session", event.t, index, fields, f"session end: {event.reason}")

    def _transfer(self, operation: FileOperation, index: int) -> SourcedEvent:
        fields = {
            "Protocol": operation.protocol,
            "Operation": operation.op,
            "Path": operation.path,
            "NewPath": operation.path2 or "",
            "Status": operation.status,
            "Bytes": str(operation.bytes),
            "Size": str(operation.size) if operation.size is not None else "",
            "Sha256": operation.sha256 or "",
        }
        summary = f"{operation.protocol} {operation.op} {operation.path}"
        return self._event("file_transfer", operation.t, index, fields, summary)

    def _login(self, outcome: str, reason: str, t: int, index: int) -> SourcedEvent:
        fields = {"Outcome": outcome, "Reason": reason}
        attempts = _ATTEMPTS.search(reason)
        if attempts is not None:
            fields["FailedAttempts"] = attempts[1]
        return self._event("login", t, index, fields, f"login {outcome}: {reason}")

    def _event(
        self, category: str, t: int, index: int, fields: dict[str, str], summary: str
    ) -> SourcedEvent:
        """The event, with who and where (a field of the event's own wins)."""
        merged = {name: value for name, value in self.who.items() if name not in fields}
        merged |= {name: value for name, value in fields.items() if value}
        return SourcedEvent(category, t, index, merged, summary)


def _policy(notice: str) -> dict[str, str]:
    """The fields of a ``policy`` notice (see :data:`_POLICY`); one the gateway words
    otherwise keeps only ``Message``."""
    fields = {"Message": notice}
    if notice.startswith(_UNREADABLE):
        return fields | {"Action": "reject", "CommandLine": notice[len(_UNREADABLE) :]}
    found = _POLICY.fullmatch(notice)
    if found is None:
        return fields
    for name, group in (
        ("Action", "action"),
        ("Rule", "rule"),
        ("Outcome", "outcome"),
        ("Auditor", "auditor"),
        ("Reason", "reason"),
        ("CommandLine", "line"),
    ):
        if found[group]:
            fields[name] = found[group]
    if found["quoted"]:  # the gateway's words since reasons may hold ": " themselves
        try:
            fields["Reason"] = json.loads(found["quoted"])
        except ValueError:
            fields["Reason"] = found["quoted"]
    return fields


def _flag(value: bool) -> str:
    return "true" if value else "false"
