"""One session read for Sigma rules: its command reader, and the alerts each chunk raises.

Shared by the live group (:mod:`consumer.alerter`, chunks from the sessions topic) and
by hunting in history (:mod:`consumer.hunt`, chunks from the store), so a rule sees a
stored session exactly as it would have seen it live. Chunks are fed in seq order to
the command reader the index and the command policy use
(:class:`~sshtrail.indexsession.IndexedSession` over :mod:`sshtrail.terminal`); every
command it reads becomes the process events of :mod:`sshtrail.alertevents`, matched
against the ``process_creation`` rules given. The session's other events -- its start
and end, requests, environment variables, policy decisions, refused logins
(:mod:`sshtrail.sessionevents`) and file transfers (:mod:`sshtrail.transferwatch`) --
are matched against the rules of their own ``product: sshtrail`` log source. An alert is
returned as a row of the ``alerts`` table; its id is made of the session, the chunk, the
rule and the command's time (and, for another event, its category and place in the
chunk), so the same event read again raises the same id.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import uuid
from typing import Any

from sshtrail.alertevents import command_events
from sshtrail.events import Exec, Start
from sshtrail.indexsession import IndexedSession
from sshtrail.sessionevents import SessionEvents, SourcedEvent
from sshtrail.sigmarules import PROCESS_CREATION, Rule, RuleSet
from sshtrail.wire import Chunk

#: Alerts one command raises at most (a rule file that matches everything).
MAX_ALERTS_PER_COMMAND = 50


class AlertSession:
    """One session's command reader, the account on its target and its exec requests."""

    def __init__(self, session_id: uuid.UUID) -> None:
        self.reader = IndexedSession(session_id)
        #: The account on the target (the session's Start, or the store's row).
        self.user: str | None = None
        #: Times (ns) of the session's exec requests: their command docs are exec commands.
        self.execs: set[int] = set()
        #: The session's events other than commands.
        self.events = SessionEvents()

    def forget(self) -> None:
        """Start reading again as if nothing was read (earlier chunks read back only in
        part): a reader and session events that missed chunks would read them wrong."""
        self.reader = IndexedSession(self.reader.session_id)
        self.events = SessionEvents()

    def know(self, operator: str | None, target: str | None, user: str | None) -> None:
        """What the store's row says, for a session taken over mid-way."""
        self.reader.operator, self.reader.target, self.user = operator, target, user
        self.events.know(operator, target, user)

    def apply(self, chunk: Chunk, rules: RuleSet) -> list[dict[str, Any]]:
        """Feed the session's next chunk; the alert rows ``rules`` raise on the commands it
        completed. The reader reads it even with no rules, to stay where the session is."""
        for event in chunk.events:
            if isinstance(event, Start):
                self.user = event.user
            elif isinstance(event, Exec) and event.mode == "exec":
                self.execs.add(event.t)
        rows: list[dict[str, Any]] = []
        for doc in self.reader.apply(chunk):
            if doc["kind"] == "command" and PROCESS_CREATION in rules.by_category:
                rows += self._alerts(doc, rules)
        for found in self.events.read(chunk.events):
            for rule in rules.match(found.fields, found.category)[:MAX_ALERTS_PER_COMMAND]:
                rows.append(self._event_alert(chunk.seq, found, rule))
        return rows

    def _event_alert(self, seq: int, found: SourcedEvent, rule: Rule) -> dict[str, Any]:
        reader = self.reader
        started = reader.started_at
        at = started + dt.timedelta(microseconds=found.t // 1000) if started else None
        source = f"{found.category}|{found.index}"
        return self._row(
            rule, seq=seq, t=found.t, at=at, command=found.summary, event=found.fields,
            source=source,
        )  # fmt: skip

    def _row(
        self,
        rule: Rule,
        *,
        seq: int,
        t: int,
        at: dt.datetime | None,
        command: str,
        event: dict[str, str],
        source: str = "",
    ) -> dict[str, Any]:
        reader = self.reader
        return {
            "id": alert_id(reader.session_id, seq, rule.id, t, source),
            "session_id": reader.session_id,
            "seq": seq,
            "t": t,
            "at": at or dt.datetime.now(dt.UTC),
            "rule_id": rule.id[:64],
            "title": rule.title[:512],
            "level": (rule.level or "")[:16],
            "author": (rule.author or "")[:512],
            "operator": reader.operator,
            "target": reader.target,
            "command": command[:4096],
            "tags": list(rule.tags),
            "event": dict(event),
        }

    def _alerts(self, doc: dict[str, Any], rules: RuleSet) -> list[dict[str, Any]]:
        text: str = doc["text"]
        events = command_events(text, self.user, exec_request=doc["t"] in self.execs)
        found: dict[str, tuple[Rule, dict[str, str]]] = {}
        for event in events:
            for rule in rules.match(event):
                found.setdefault(rule.id, (rule, event))
        return [
            self._row(rule, seq=doc["seq"], t=doc["t"], at=doc["at"], command=text, event=event)
            for rule, event in list(found.values())[:MAX_ALERTS_PER_COMMAND]
        ]


def alert_id(session_id: uuid.UUID, seq: int, rule_id: str, t: int, source: str = "") -> str:
    """The id an alert has however often its chunk is read, from wherever in the session
    the reader started: the session, the chunk, the rule, and the command's time (its
    Enter; the text read may differ when the prompt was not known). An event other than
    a command adds ``source``, its category and place in the chunk (``environment|3``):
    two variables sent at one instant are two alerts of one rule."""
    key = f"{session_id}|{seq}|{rule_id}|{t}"
    if source:
        key += f"|{source}"
    return hashlib.sha256(key.encode()).hexdigest()[:32]
