"""``sshtrail sessions``, ``show`` and ``search``: what auditors read, safe to print.

Every text that came from a session goes through
:func:`~sshtrail.textsafe.visible` before it reaches the terminal; ``--json``
output is JSON, whose encoder escapes control characters itself. The JSON
shapes are documented in docs/operations.md ("Auditor commands").
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import sys
import uuid
from collections import Counter
from typing import Any, TypeVar

from sqlalchemy.engine import Connection
from sqlalchemy.exc import OperationalError, ProgrammingError

from sshtrail import crosscheck, interrupted, queries, search
from sshtrail.cli import transfers
from sshtrail.cli.commands import SESSION_COLUMNS
from sshtrail.cli.evidence import default_keys, refused_json, refused_lines, verdict_json
from sshtrail.cli.output import chosen_format, print_csv, print_json, print_listing
from sshtrail.cli.reading import store
from sshtrail.cli.timespec import clock
from sshtrail.db import existing_engine, shown_url
from sshtrail.errors import BrokerError, DatabaseError, InvalidError, NotSetUp
from sshtrail.settings import Settings
from sshtrail.states import MaskedInput, SessionStatus
from sshtrail.textsafe import local_time, visible
from sshtrail.verification import fingerprint, session_verdicts, verify_session

HIGHLIGHT = ("\x1b[1;31m", "\x1b[0m")
T = TypeVar("T")


def run_sessions(args: argparse.Namespace, settings: Settings) -> int:
    wanted = queries.SessionFilter(
        args.operator,
        args.target,
        SessionStatus(args.status) if args.status else None,
        args.since,
        args.until,
        args.limit,
        MaskedInput(args.masked_input) if args.masked_input else None,
    )
    keys = default_keys(settings)
    with store(settings) as conn:
        rows = queries.list_sessions(conn, wanted)
        shorts = queries.short_ids(conn, [row["id"] for row in rows])
        verdicts = session_verdicts(conn, rows, keys)
    shape = chosen_format(args)
    if shape == "json":
        print_json(
            [
                _sessionprint_json(row, shorts[row["id"]], verdict_json(verdicts[row["id"]], keys))
                for row in rows
            ]
        )
        return 0
    csv_ = shape == "csv"
    columns = args.columns or SESSION_COLUMNS
    table = [columns]
    for row in rows:
        cells = {
            "ID": str(row["id"]) if csv_ else shorts[row["id"]],
            "OPERATOR": visible(row["operator"] or "?"),
            "TARGET": visible(row["target"] or "?"),
            "REQUEST": request_text(row, 4096 if csv_ else 40),
            "CLIENT": visible(row["client"] or "?"),
            "STARTED": _iso(row["started_at"]) if csv_ else local_time(row["started_at"]),
            "DURATION": duration_text(row),
            "STATUS": row["status"],
            "EXIT": exit_text(row),
            "CHAIN": verdicts[row["id"]].status.value,
            "MASKED": row["masked_input"] or "-",
        }
        table.append(tuple(cells[name] for name in columns))
    print_listing(table, csv_, "(no sessions match)")
    return 0


def run_show(args: argparse.Namespace, settings: Settings) -> int:
    with store(settings) as conn:
        session_id = queries.resolve(conn, args.session)
        row = queries.session(conn, session_id)
        keys = default_keys(settings)
        verdict = verify_session(conn, row, keys)
        refused = queries.refused_chunks(conn, session_id)
        moved = transfers.of_session(conn, session_id, whole=args.json) if row["transfers"] else []
        commands = recorded_commands(session_id, queries.stored_chunks(conn, session_id))
        witness = index_witness(settings, conn, session_id, commands)
    if args.json:
        document = _sessionprint_json(row, session_id.hex, verdict_json(verdict, keys))
        document["commands"] = [
            {"t": hit.t / 1e9, "command": hit.text, "certain": hit.certain} for hit in commands
        ]
        document["index"] = witness
        document["transfers_read"] = row["transfers"]
        document["transfers"] = [transfers.transfer_json(found) for found in moved]
        document["refused"] = refused_json(refused)
        print_json(document)
        return 0
    fields = session_fields(
        row,
        local_time(row["started_at"]),
        local_time(row["ended_at"]),
        f"{verdict.status.value}: {verdict.detail}",
        signer_text(verdict.signer, keys),
    )
    for name, value in fields:
        print(f"{name:>12}  {visible(str(value)) if value is not None else '-'}")
    for line in refused_lines(refused):
        print(line)
    print(f"{'index':>12}  {witness['status']}" + _detail(witness["detail"]))
    print(f"{'commands':>12}  {len(commands) or 'none'}")
    for hit in commands:
        doubt = "" if hit.certain else "  (?: its prompt could not be told apart)"
        print(f"{clock(hit.t / 1e9):>12}  {visible(hit.text)}{doubt}")
    for line in transfers.session_lines(row, moved):
        print(line)
    return 0


def _detail(text: str) -> str:
    return f": {visible(text)}" if text else ""


def recorded_commands(session_id: uuid.UUID, stored: list[tuple[int, bytes]]) -> list[search.Hit]:
    """The session's commands read from its stored chunks, as the index reads them."""
    # Imported here: the terminal emulator is for show, not for every command's start-up.
    from sshtrail.indexsession import recorded_commands as read  # noqa: PLC0415

    names = [field.name for field in dataclasses.fields(search.Hit)]
    found = read(session_id, (data for _, data in stored))
    return [search.Hit(**{name: doc[name] for name in names}) for doc in found]


def index_witness(
    settings: Settings, store_conn: Connection, session_id: uuid.UUID, commands: list[search.Hit]
) -> dict[str, str]:
    """What the search index says of the session against the store and the recording:
    ``agrees``, ``differs`` (and how), or ``unavailable`` (why)."""
    try:
        engine = existing_engine(settings.search_url, "search index")
    except NotSetUp as exc:
        return {"status": "unavailable", "detail": str(exc)}
    try:
        with engine.connect() as conn:
            read = list(crosscheck.indexed(conn, session_id))
            indexed = search.commands(conn, session_id)
    except (OperationalError, ProgrammingError) as exc:
        return {"status": "unavailable", "detail": str(exc.orig).strip()}
    finally:
        engine.dispose()
    if not read:
        return {"status": "unavailable", "detail": "the search index has not read this session"}
    from sshtrail.letters import StoreLetters  # noqa: PLC0415 (Kafka's client: only if asked)

    try:
        held = crosscheck.compare(store_conn, read, StoreLetters(settings))
    except BrokerError as exc:  # a quarantined session, and the dead letters unread
        return {"status": "unavailable", "detail": f"the dead-letter topic: {exc}"}
    problems = [found.detail for found in held]
    recorded = Counter(hit.text for hit in commands)
    listed = Counter(hit.text for hit in indexed)
    if lacking := sum((recorded - listed).values()):
        problems.append(
            f"{lacking} command{'s' if lacking != 1 else ''} of the recording not in the index"
        )
    if extra := sum((listed - recorded).values()):
        problems.append(
            f"{extra} command{'s' if extra != 1 else ''} in the index not in the recording"
        )
    if problems:
        return {"status": "differs", "detail": "; ".join(problems)}
    return {"status": "agrees", "detail": ""}


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
    ]


def run_search(args: argparse.Namespace, settings: Settings) -> int:
    if not args.query.strip():
        raise InvalidError("the search text is empty")
    session_id = None
    if args.session is not None:
        with store(settings) as conn:
            session_id = queries.resolve(conn, args.session)
    query = search.Query(
        args.query,
        kind=args.kind,
        operator=args.operator,
        target=args.target,
        session_id=session_id,
        since=args.since,
        until=args.until,
        limit=args.limit,
        masked_input=MaskedInput(args.masked_input) if args.masked_input else None,
        exit_status=args.exit,
    )
    hits = [] if args.kind == "transfer" else _indexed(settings, query)
    if args.kind in (None, "transfer"):  # file paths are in the store, not the index
        wanted = transfers.transfer_filter(
            args, session_id, containing=args.query, limit=args.limit, exit_status=args.exit
        )
        try:
            hits = transfers.merged(hits, transfers.transfer_hits(settings, wanted), args.limit)
        except (NotSetUp, DatabaseError):
            if args.kind == "transfer":
                raise
            # Searching what sessions showed needs only the index: without a store
            # (or one not reachable) there are no file paths to add, and it says so.
            print("(file transfers not searched: the store cannot be read)", file=sys.stderr)
    shape = chosen_format(args)
    if shape == "json":
        print_json([_hit_json(hit, args.query) for hit in hits])
    elif shape == "csv":
        header = ("session", "kind", "t", "at", "operator", "target", "text", "certain")
        print_csv(
            [header]
            + [
                (
                    str(h.session_id),
                    h.kind,
                    f"{h.t / 1e9:.3f}",
                    _iso(h.at),
                    visible(h.operator or ""),
                    visible(h.target or ""),
                    visible(h.text),
                    "true" if h.certain else "false",
                )
                for h in hits
            ]
        )
    else:
        _print_hits(settings, hits, args.query)
    if not hits:
        print("(no matches)", file=sys.stderr)
        return EXIT_NO_MATCH
    return 0


#: What ``search`` exits with when nothing matches (as grep does).
EXIT_NO_MATCH = 1


def _indexed(settings: Settings, query: search.Query) -> list[search.Hit]:
    engine = existing_engine(settings.search_url, "search index")
    try:
        with engine.connect() as conn:
            return search.search(conn, query)
    except (OperationalError, ProgrammingError) as exc:
        raise DatabaseError(
            f"cannot search {shown_url(settings.search_url)}: is the index group "
            f"running? ({str(exc.orig).strip()})"
        ) from None
    finally:
        engine.dispose()


def _hit_json(hit: search.Hit, needle: str) -> dict[str, Any]:
    return {
        "session": str(hit.session_id),
        "kind": hit.kind,
        "t": hit.t / 1e9,
        "at": hit.at.isoformat() if hit.at else None,
        "operator": hit.operator,
        "target": hit.target,
        "text": hit.text,
        "matches": [list(span) for span in hit.matches(needle)],
        "certain": hit.certain,
    }


def _print_hits(settings: Settings, hits: list[search.Hit], needle: str) -> None:
    """Hits grouped per session (in the order of each session's first hit)."""
    color = sys.stdout.isatty()
    with store(settings) as conn:
        shorts = queries.short_ids(conn, sorted({h.session_id for h in hits}))
    groups: dict[uuid.UUID, list[search.Hit]] = {}
    for hit in hits:
        groups.setdefault(hit.session_id, []).append(hit)
    width = max((len(_kind(hit)) for hit in hits), default=0)
    for session_id, found in groups.items():
        short = shorts.get(session_id, session_id.hex[:12])
        first = found[0]
        count = f"{len(found)} hit{'s' if len(found) != 1 else ''}"
        print(
            f"{short}  {visible(first.operator or '?')}@{visible(first.target or '?')}  "
            f"{local_time(first.at)}  {count}"
        )
        for hit in found:
            print(
                f"    +{clock(hit.t / 1e9)}  {_kind(hit):<{width}}  "
                f"{_highlight(hit, needle, color)}"
            )
        print(f"    replay: sshtrail replay {short} --from {clock(first.t / 1e9)}")


def _kind(hit: search.Hit) -> str:
    """The hit's kind; ``command?`` where the prompt could not be told apart from it."""
    return f"{hit.kind}?" if not hit.certain else hit.kind


def _highlight(hit: search.Hit, needle: str, color: bool) -> str:
    """The hit's text made visible, each match (:meth:`~sshtrail.search.Hit.matches`,
    the positions ``--json`` gives) marked."""
    text, parts, start = hit.text, [], 0
    for found, end in hit.matches(needle):
        parts += [visible(text[start:found]), _mark(visible(text[found:end]), color)]
        start = end
    parts.append(visible(text[start:]))
    return "".join(parts)


def _mark(text: str, color: bool) -> str:
    return f"{HIGHLIGHT[0]}{text}{HIGHLIGHT[1]}" if color else f"[{text}]"


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


def _sessionprint_json(
    row: dict[str, Any], short: str, verification: dict[str, Any]
) -> dict[str, Any]:
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
    document["duration_s"] = _seconds(row)
    return document


def _seconds(row: dict[str, Any]) -> float | None:
    if row["started_at"] is None or row["ended_at"] is None:
        return None
    elapsed: dt.timedelta = row["ended_at"] - row["started_at"]
    return round(elapsed.total_seconds(), 3)


def duration_text(row: dict[str, Any]) -> str:
    seconds = _seconds(row)
    return clock(seconds) if seconds is not None else "-"


def request_text(row: dict[str, Any], width: int) -> str:
    """What the session asked for, e.g. ``exec: uptime`` or ``forward: db:5432``, cut."""
    request, command = row["request"], row["command"] or ""
    if request is None:
        return "-"  # a refused login, or stored before the store recorded requests
    text = {"shell": "shell", "direct-tcpip": "forward: "}.get(request, f"{request}: ")
    if request != "shell":
        text += command
    return visible(text if len(text) <= width else text[: width - 1] + "…")


def exit_text(row: dict[str, Any]) -> str:
    if row["exit_status"] is not None:
        return str(row["exit_status"])
    return visible(f"sig {row['exit_signal']}") if row["exit_signal"] else "-"


def _iso(moment_: dt.datetime | None) -> str:
    return moment_.isoformat() if moment_ else ""
