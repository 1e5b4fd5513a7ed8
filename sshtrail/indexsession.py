"""One session as the index follows it: its terminal, where it got to, what it found.

:class:`IndexedSession` is fed a session's chunks in seq order and turns
each into documents (commands, output lines, exec commands, input lines,
metadata, notices) numbered per kind. The numbers are part of each
document's key, so a replay that produces a document again changes
nothing; they are saved with the session's progress, so a session can be
taken up again from the last chunks kept in the backlog rather than from
its first byte.
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from collections.abc import Iterable
from typing import Any

from sshtrail.errors import WireError
from sshtrail.events import End, Env, Exec, Exit, Input, Notice, Output, Resize, Start
from sshtrail.filetransfers import transfer_protocol
from sshtrail.interrupted import KEEPALIVE
from sshtrail.maskedinput import MaskedInputTracker
from sshtrail.terminal import Found, Kind, Terminal
from sshtrail.wire import Chunk, decode_chunk

#: An exec command that is a shell reading commands from its input.
_SHELL = re.compile(r"^\s*(?:exec\s+)?(?:/\S*/)?(?:ba|z|da|k|fi|c|tc)?sh(?:\s+-[a-z]+)*\s*$")
#: Kinds numbered per session (the key of a document is session, kind, number).
KINDS: tuple[Kind | str, ...] = ("command", "output", "meta", "input", "screen", "transfer")


class IndexedSession:
    """One session's indexing state; see the module's text."""

    def __init__(self, session_id: uuid.UUID, next_seq: int = 0, ended: bool = False) -> None:
        self.session_id = session_id
        self.next_seq = next_seq
        self.ended = ended
        self.operator: str | None = None
        self.target: str | None = None
        self.started_at: dt.datetime | None = None
        self.terminal: Terminal | None = None
        self.masked = MaskedInputTracker()
        #: The channel's bytes are not a terminal's -- a forwarded TCP connection, an
        #: SFTP or SCP exchange (its files are in ``transfers``) -- and are indexed as
        #: nothing.
        self.opaque = False
        self.exit_status: int | None = None
        #: SHA-256 of the last chunk applied (hex): what the index read the session
        #: up to, for ``verify --cross-check`` to hold the store to.
        self.last_digest: str | None = None
        self._size = (80, 24, True)
        self._mode = "shell"
        self._command = ""
        self.ordinals: dict[str, int] = dict.fromkeys(KINDS, 0)
        #: Flagged ``uncertain-prompt`` before this member took the session over.
        self.flagged_before = False

    def _blind_enter(self, event: object) -> bool:
        """Whether ``event`` is an Enter alone after keys that were all masked: a line
        typed blind, as the masked-input tracker counts it (before it is fed)."""
        return (
            isinstance(event, Input)
            and event.data in (b"\r", b"\n", b"\r\n")
            and self.masked.masked_run > 0
            and not self.masked.input_line
        )

    def apply(self, chunk: Chunk) -> list[dict[str, Any]]:
        """Feed one chunk (the next in seq order); returns the documents it completed."""
        found: list[Found] = []
        for event in chunk.events:
            blind = self._blind_enter(event)
            self.masked.feed(event)
            if isinstance(event, Start):
                self._start(event, found)
            elif isinstance(event, Output | Input) and self.opaque:
                continue
            elif isinstance(event, Output):
                self._screen().output(event.data, event.t)
            elif isinstance(event, Input):
                self._screen().input(event.data, event.t, blind)
            elif isinstance(event, Resize):
                self._screen().resize(event.cols, event.rows)
            elif isinstance(event, Exec):
                self._request(event, found)
            elif isinstance(event, Env):
                value = "(secret)" if event.value is None else _text(event.value)
                passed = "passed on" if event.accepted else "not passed on"
                found.append(Found("meta", f"env {_text(event.name)}={value} ({passed})", event.t))
            elif isinstance(event, Notice) and event.code != KEEPALIVE:
                found.append(Found("meta", f"{event.code}: {event.text}", event.t))
            elif isinstance(event, Exit) and event.status is not None:
                self.exit_status = event.status
            elif isinstance(event, End):
                self._screen().finish(event.t)
                self.ended = True
        if self.terminal is not None:
            self.terminal.flush()  # what this chunk showed is searchable now
            found.extend(self.terminal.found)
            self.terminal.found.clear()
        self.next_seq = chunk.seq + 1
        self.last_digest = chunk.digest.hex()
        found.sort(key=lambda f: f.t)  # stable: a terminal's own order is kept
        return [self._document(f, chunk.seq) for f in found]

    def state(self) -> dict[str, Any]:
        return {
            "session_id": self.session_id,
            "next_seq": self.next_seq,
            "operator": self.operator,
            "target": self.target,
            "started_at": self.started_at,
            "ended": self.ended,
            "masked_input": self.masked.verdict,
            "ordinals": ",".join(f"{kind}={n}" for kind, n in self.ordinals.items() if n),
            "exit_status": self.exit_status,
            "last_digest": self.last_digest,
            "uncertain_prompt": self.uncertain_prompt,
        }

    @property
    def uncertain_prompt(self) -> bool:
        """Whether the session is flagged ``uncertain-prompt`` (sshtrail/promptrun.py)."""
        terminal = self.terminal
        return self.flagged_before or (terminal is not None and terminal.prompt_run.flagged)

    def restore_ordinals(self, saved: str | None) -> None:
        for item in (saved or "").split(","):
            kind, _, number = item.partition("=")
            if kind and number.isdigit():
                self.ordinals[kind] = int(number)

    def _start(self, start: Start, found: list[Found]) -> None:
        self.operator, self.target = start.operator[:255], start.target[:255]
        self.started_at = dt.datetime.fromtimestamp(start.started_at / 1e9, dt.UTC)
        self._size = (start.cols, start.rows, bool(start.term))
        meta = (
            f"operator {start.operator} target {start.target} client {start.client} "
            f"user {start.user} host {start.host}:{start.port}"
        )
        found.append(Found("meta", meta, start.t))

    def _request(self, event: Exec, found: list[Found]) -> None:
        command = _text(event.command)
        self._mode, self._command = event.mode, command
        self.opaque = transfer_protocol(event.mode, command) is not None
        if event.mode == "exec":
            found.append(Found("command", command, event.t))
        elif event.mode == "direct-tcpip":
            self.opaque = True
            found.append(Found("meta", f"direct-tcpip forwarded to {command}", event.t))
        elif event.mode == "subsystem":
            found.append(Found("meta", f"subsystem {command}", event.t))

    def _screen(self) -> Terminal:
        if self.terminal is None:  # created at the first byte: the request is known by then
            columns, rows, pty = self._size
            self.terminal = Terminal(columns, rows, pty, self._input_kind())
        return self.terminal

    def _input_kind(self) -> Kind | None:
        """What the input lines of a session without a PTY are."""
        if self._mode == "shell" or (self._mode == "exec" and _SHELL.match(self._command)):
            return "command"
        if self._mode == "exec":
            return "input"
        return None  # a subsystem's input is its protocol (SFTP ...), not lines

    def _document(self, found: Found, seq: int) -> dict[str, Any]:
        ordinal = self.ordinals.get(found.kind, 0)
        self.ordinals[found.kind] = ordinal + 1
        at = (
            self.started_at + dt.timedelta(microseconds=found.t // 1000)
            if self.started_at
            else None
        )
        return {
            "session_id": self.session_id,
            "kind": found.kind,
            "ordinal": ordinal,
            "seq": seq,
            "t": found.t,
            "at": at,
            "operator": self.operator,
            "target": self.target,
            "text": found.text,
            "certain": found.certain,
        }


def _text(data: bytes) -> str:
    return data.decode("utf-8", "replace")


def recorded_commands(
    session_id: uuid.UUID, stored: Iterable[bytes]
) -> tuple[list[dict[str, Any]], bool]:
    """The commands of a recording as the index reads them, read afresh from its stored
    chunks (in seq order) -- what ``show`` lists, so that a search index edited by
    someone cannot hide a command from it -- and whether the session is
    ``uncertain-prompt``, read from the same lines. A chunk that does not decode is
    passed over: the session's verification says it is tampered."""
    session = IndexedSession(session_id)
    found = []
    for data in stored:
        try:
            chunk = decode_chunk(data)
        except WireError:
            continue
        found += [doc for doc in session.apply(chunk) if doc["kind"] == "command"]
    return found, session.uncertain_prompt
