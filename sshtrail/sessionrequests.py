"""What a session asked the gateway for besides its command, read back from its recording:
the environment its client sent, the terminal size it asked for and the one it got, the
signals it sent, how often its window changed, and the connections it forwarded.

``show``, ``show --json`` and the console's session page all list these from
:func:`read_requests` and :func:`forwarded` (docs/operations.md, "Auditor commands"), so
the three agree. Texts are returned as recorded (names and values decoded as UTF-8 with
replacement): whoever prints them makes them safe, once (docs/decisions.md, "Session
text is escaped once, where it is printed").

Which values are withheld is the gateway's rule, not this module's: a variable whose
name matches ``gateway.secret_env`` (``*PASSWORD*``, ``*PASSWD*``, ``*SECRET*``,
``*TOKEN*``, ``*KEY*`` by default, case-insensitive) is recorded with its name only,
so no reader can show its value.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Connection

from sshtrail.errors import WireError
from sshtrail.events import Env, Notice, Resize, Start
from sshtrail.tables import SESSIONS
from sshtrail.wire import decode_chunk

#: The gateway's notice of a terminal size it cut (producer/relay.py, ``_note_clamped``).
_CLAMPED = re.compile(r"terminal size ([0-9]+)x([0-9]+) requested, ([0-9]+)x([0-9]+) granted")
#: How many variables and signals are listed at most: a client may send thousands.
MAX_LISTED = 1000


@dataclass(frozen=True, slots=True)
class Variable:
    """One environment variable the client sent: ``value`` None when the gateway
    withheld it (a secret's name), ``accepted`` when it was passed on to the target."""

    name: str
    value: str | None
    accepted: bool


@dataclass(slots=True)
class Requests:
    """What :func:`read_requests` found; sizes are ``(columns, rows)``, ``None`` for a
    session without a terminal; ``signals`` are ``(t, name)``, t in ns from the start."""

    environment: list[Variable] = field(default_factory=list)
    terminal_requested: tuple[int, int] | None = None
    terminal_granted: tuple[int, int] | None = None
    signals: list[tuple[int, str]] = field(default_factory=list)
    window_changes: int = 0

    def terminal_text(self) -> str | None:
        """``5000x5000 requested, 1000x500 granted``, or just ``80x24`` when granted as
        asked; None without a terminal."""
        if self.terminal_granted is None:
            return None
        granted = "{}x{}".format(*self.terminal_granted)
        if self.terminal_requested in (None, self.terminal_granted):
            return granted
        return "{}x{} requested, ".format(*self.terminal_requested) + granted + " granted"

    def as_json(self) -> dict[str, Any]:
        size = None
        if self.terminal_granted is not None:
            requested = self.terminal_requested or self.terminal_granted
            size = {"requested": list(requested), "granted": list(self.terminal_granted)}
        return {
            "environment": [
                {"name": v.name, "value": v.value, "accepted": v.accepted} for v in self.environment
            ],
            "terminal_size": size,
            "signals": [{"t": t / 1e9, "signal": name} for t, name in self.signals],
            "window_changes": self.window_changes,
        }


def read_requests(stored: Iterable[tuple[int, bytes]]) -> Requests:
    """The requests recorded in a session's stored chunks (seq, bytes), in order. A
    chunk that does not decode is passed over: the verification says it is tampered."""
    found = Requests()
    resized = False
    for _, data in stored:
        try:
            events = decode_chunk(data).events
        except WireError:
            continue
        for event in events:
            if isinstance(event, Start) and event.term:
                found.terminal_granted = (event.cols, event.rows)
            elif isinstance(event, Env) and len(found.environment) < MAX_LISTED:
                found.environment.append(_variable(event))
            elif isinstance(event, Resize):
                found.window_changes += 1
                resized = True
            elif isinstance(event, Notice):
                _notice(found, event, resized)
    return found


def _variable(event: Env) -> Variable:
    value = None if event.value is None else event.value.decode("utf-8", "replace")
    return Variable(event.name.decode("utf-8", "replace"), value, event.accepted)


def _notice(found: Requests, event: Notice, resized: bool) -> None:
    if event.code == "signal" and len(found.signals) < MAX_LISTED:
        found.signals.append((event.t, event.text))
    elif event.code == "terminal-size" and not resized:
        # Noted once per session, at the request or at the first window change cut:
        # before any window change it is about the size the session started with.
        cut = _CLAMPED.fullmatch(event.text)
        if cut is not None and found.terminal_granted is not None:
            found.terminal_requested = (int(cut[1]), int(cut[2]))


@dataclass(frozen=True, slots=True)
class Forward:
    """A connection forwarded (``ssh -L``) over the same SSH connection: the session
    that recorded it, its destination as the client asked, and its bytes each way."""

    session: uuid.UUID
    destination: str
    bytes_in: int
    bytes_out: int
    status: str

    def host_port(self) -> tuple[str, int | None]:
        """The destination split: ``db:5432`` -> (``db``, 5432), ``[::1]:22`` -> (``::1``, 22)."""
        host, _, port = self.destination.rpartition(":")
        if not port.isdigit() or not host:
            return self.destination, None
        return host.removeprefix("[").removesuffix("]"), int(port)

    def as_json(self) -> dict[str, Any]:
        host, port = self.host_port()
        return {
            "session": str(self.session),
            "host": host,
            "port": port,
            "bytes_in": self.bytes_in,
            "bytes_out": self.bytes_out,
            "status": self.status,
        }


def forwarded(conn: Connection, row: dict[str, Any], limit: int = MAX_LISTED) -> list[Forward]:
    """The forwarded connections of the SSH connection ``row``'s session came over.

    A forwarded connection is recorded as a session of its own (docs/wire-format.md,
    version 2); what ties it to this one is the client's address *and port*, the
    gateway and the operator, which together name one SSH connection. A forwarded
    session lists none: it is not the one an auditor opens for them."""
    if row["request"] == "direct-tcpip" or not row["client"] or not row["gateway"]:
        return []
    table = SESSIONS
    query = (
        select(table.c.id, table.c.command, table.c.bytes_in, table.c.bytes_out, table.c.status)
        .where(
            table.c.request == "direct-tcpip",
            table.c.client == row["client"],
            table.c.gateway == row["gateway"],
            table.c.operator == row["operator"],
        )
        .order_by(table.c.started_at, table.c.id)
        .limit(limit)
    )
    return [
        Forward(found.id, found.command or "", found.bytes_in, found.bytes_out, found.status)
        for found in conn.execute(query)
    ]


def described(found: Requests, forwards: list[Forward]) -> list[tuple[str, str]]:
    """The lines ``show`` prints and the session page lists, (label, text), as recorded:
    the printer makes the text safe. A withheld value reads ``(withheld: a secret's
    name)``; a variable the target was not given says so."""
    lines = [("pty size", found.terminal_text() or "(no pty)")]
    lines.append(("resizes", str(found.window_changes)))
    lines.append(("environment", str(len(found.environment)) if found.environment else "none"))
    for variable in found.environment:
        value = "(withheld: a secret's name)" if variable.value is None else variable.value
        passed = "passed on" if variable.accepted else "not passed on"
        lines.append(("", f"{variable.name}={value} ({passed})"))
    lines.append(("signals", ", ".join(name for _, name in found.signals) or "none"))
    lines.append(("forwarded", str(len(forwards)) if forwards else "none"))
    for forward in forwards:
        lines.append(
            (
                "",
                f"{forward.destination}: {forward.bytes_in} bytes to it, "
                f"{forward.bytes_out} bytes back ({forward.status}, session {forward.session})",
            )
        )
    return lines
