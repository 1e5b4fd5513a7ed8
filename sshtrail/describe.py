"""How a stored session is described to a person or a script, the same in ``show`` and
on the console's session page: its fields in order, the texts of its request, exit,
duration, signer and masked input, and its JSON document (docs/operations.md,
"Auditor commands"). Every text is returned as recorded: the printer (the CLI's
:func:`~sshtrail.textsafe.visible`, the console's ``shown`` filter) makes it safe,
once (docs/decisions.md, "Session text is escaped once, where it is printed")."""

from __future__ import annotations

import datetime as dt
from typing import Any, TypeVar

from sshtrail import interrupted
from sshtrail.states import split_flags
from sshtrail.timespec import clock
from sshtrail.verification import fingerprint

T = TypeVar("T")


def session_fields(
    row: dict[str, Any], started: T, ended: T, verification: str, signer: str | None
) -> list[tuple[str, T | str | None]]:
    """What ``show`` and the console's session page say of a session, in order, as
    stored (the caller makes it safe to show); times and verification as the caller
    writes them."""
    target = f"{row['target']} ({row['target_user']}@{row['target_host']}:{row['target_port']})"
    return [
        ("session", str(row["id"])),
        ("operator", row["operator"]),
        ("client", row["client"]),
        ("target", target),
        ("gateway", row["gateway"]),
        ("terminal", row["term"] or "(no pty)"),
        ("request", request_text(row, 255)),
        ("started", started),
        ("ended", ended),
        ("duration", duration_text(row)),
        ("status", row["status"]),
        ("exit", exit_text(row)),
        ("end reason", row["end_reason"]),
        (
            "interrupted",
            interrupted.summary(row["end_reason"], row["interrupted_at"], row["ended_at"]),
        ),
        ("bytes", f"{row['bytes_in']} in, {row['bytes_out']} out"),
        ("chunks", f"{row['chunk_count']} stored, last seq {row['last_seq']}"),
        ("gaps", row["gaps"].describe()),
        ("verification", verification),
        ("signed by", signer),
        ("quarantined", row["quarantine_reason"]),
        ("masked input", masked_text(row)),
        ("policy", row["policy"]),
        ("flags", ", ".join(split_flags(row["flags"])) or None),
    ]


def signer_text(key: bytes | None, keys: dict[bytes, str]) -> str | None:
    if key is None:
        return None
    return f"{fingerprint(key)} ({keys.get(key, 'not a trusted key')})"


def masked_text(row: dict[str, Any]) -> str | None:
    if not row["masked_input"]:
        return None
    lines = row["masked_lines"]
    return (
        f"{row['masked_input']}: {row['masked_bytes']} bytes on {lines} "
        f"line{'s' if lines != 1 else ''}"
    )


def session_json(row: dict[str, Any], short: str, verification: dict[str, Any]) -> dict[str, Any]:
    keys = (
        "operator",
        "client",
        "target",
        "target_host",
        "target_port",
        "target_user",
        "gateway",
        "term",
        "request",
        "command",
        "status",
        "exit_status",
        "exit_signal",
        "end_reason",
        "bytes_in",
        "bytes_out",
        "chunk_count",
        "last_seq",
        "gaps",
        "quarantine_reason",
        "masked_input",
        "masked_bytes",
        "masked_lines",
        "policy",
    )
    # "session" as search, verify and reveal name it; "id" kept for scripts written before.
    document: dict[str, Any] = {"session": str(row["id"]), "id": str(row["id"]), "short_id": short}
    document.update({key: row[key] for key in keys})
    # Unreadable gaps are [] here; the verification (tampered) says what was stored.
    document["gaps"] = row["gaps"].as_json()
    # One verdict, the one `verify` gives (sshtrail/verification.py), and a flag that agrees.
    document["verified"] = verification["status"] == "ok"
    document["verification"] = verification
    for key in ("started_at", "ended_at", "interrupted_at"):
        document[key] = row[key].isoformat() if row[key] else None
    document["duration_s"] = duration_seconds(row)
    document["flags"] = split_flags(row["flags"])
    return document


def duration_seconds(row: dict[str, Any]) -> float | None:
    if row["started_at"] is None or row["ended_at"] is None:
        return None
    elapsed: dt.timedelta = row["ended_at"] - row["started_at"]
    return round(elapsed.total_seconds(), 3)


def duration_text(row: dict[str, Any]) -> str:
    seconds = duration_seconds(row)
    return clock(seconds) if seconds is not None else "-"


def request_text(row: dict[str, Any], width: int) -> str:
    """What the session asked for, e.g. ``exec: uptime`` or ``forward: db:5432``, cut."""
    request, command = row["request"], row["command"] or ""
    if request is None:
        return "-"  # a refused login, or stored before the store recorded requests
    text = {"shell": "shell", "direct-tcpip": "forward: "}.get(request, f"{request}: ")
    if request != "shell":
        text += command
    return text if len(text) <= width else text[: width - 1] + "…"


def exit_text(row: dict[str, Any]) -> str:
    if row["exit_status"] is not None:
        return str(row["exit_status"])
    return f"sig {row['exit_signal']}" if row["exit_signal"] else "-"


def when_answered(row: dict[str, Any]) -> dt.datetime | None:
    """When a file operation was answered: its session's start plus its offset."""
    started: dt.datetime | None = row["started_at"]
    return started + dt.timedelta(microseconds=row["t"] // 1000) if started else None


def transfer_paths(row: dict[str, Any]) -> str:
    """A file operation's path, and its second path (a rename's, a link's) if any."""
    arrow = " -> " if row["op"] != "symlink" else " -> (link to) "
    return str(row["path"]) + (arrow + row["path2"] if row["path2"] else "")
