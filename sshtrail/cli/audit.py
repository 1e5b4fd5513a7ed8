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
from typing import Any

from sqlalchemy.engine import Connection
from sqlalchemy.exc import OperationalError, ProgrammingError

from sshtrail import (
    crosscheck,
    describe,
    holds,
    promptflag,
    queries,
    search,
    sessionrequests,
    tombstone,
)
from sshtrail.cli import transfers
from sshtrail.cli.auditparsers import SESSION_COLUMNS
from sshtrail.cli.evidence import refused_json, refused_lines, verdict_json
from sshtrail.commandkit.exits import EXIT_NO_MATCH
from sshtrail.commandkit.output import chosen_format, print_csv, print_json, print_listing
from sshtrail.commandkit.reading import index, store
from sshtrail.db import existing_engine
from sshtrail.errors import BrokerError, InvalidError, NotFound, NotSetUp, WireError
from sshtrail.events import Notice
from sshtrail.settings import Settings
from sshtrail.states import MaskedInput, PolicyMark, SessionStatus, chosen_flag, split_flags
from sshtrail.textsafe import local_time, visible
from sshtrail.timespec import clock
from sshtrail.verification import known_gateway_keys, session_verdicts, verify_session
from sshtrail.wire import decode_chunk

HIGHLIGHT = ("\x1b[1;31m", "\x1b[0m")


def run_sessions(args: argparse.Namespace, settings: Settings) -> int:
    wanted = queries.SessionFilter(
        args.operator,
        args.target,
        SessionStatus(args.status) if args.status else None,
        args.since,
        args.until,
        args.limit,
        MaskedInput(args.masked_input) if args.masked_input else None,
        policy=PolicyMark(args.policy) if args.policy else None,
        flag=chosen_flag(args.flag),
    )
    keys = known_gateway_keys(settings)
    with store(settings) as conn:
        listed = promptflag.list_sessions(conn, wanted, lambda: index(settings))
        rows = listed.rows
        shorts = queries.short_ids(conn, [row["id"] for row in rows])
        verdicts = session_verdicts(conn, rows, keys)
    if listed.unknown is not None and wanted.flag is not None:
        # The listing stands; only the index's flag is missing from it.
        print(f"sshtrail: uncertain-prompt is unknown: {listed.unknown}", file=sys.stderr)
    shape = chosen_format(args)
    if shape == "json":
        print_json(
            [
                describe.session_json(
                    row, shorts[row["id"]], verdict_json(verdicts[row["id"]], keys)
                )
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
            "REQUEST": visible(describe.request_text(row, 4096 if csv_ else 40)),
            "CLIENT": visible(row["client"] or "?"),
            "STARTED": _iso(row["started_at"]) if csv_ else local_time(row["started_at"]),
            "DURATION": describe.duration_text(row),
            "STATUS": row["status"],
            "EXIT": visible(describe.exit_text(row)),
            "CHAIN": verdicts[row["id"]].status.value,
            "MASKED": row["masked_input"] or "-",
            "FLAGS": ",".join(split_flags(row["flags"])) or "-",
        }
        table.append(tuple(cells[name] for name in columns))
    print_listing(table, csv_, "(no sessions match)")
    return 0


def run_show(args: argparse.Namespace, settings: Settings) -> int:
    with store(settings) as conn:
        session_id = _resolve_or_deleted(conn, args.session)
        row = queries.session(conn, session_id)
        held = [hold for hold in holds.listed(conn) if holds.covers(hold, row)]
        # `short_id` is the id the tables show, as in `sessions --json`; it once held
        # the whole id without dashes here (docs/operations.md, "Auditor commands").
        short = queries.short_ids(conn, [session_id])[session_id]
        keys = known_gateway_keys(settings)
        verdict = verify_session(conn, row, keys)
        refused = queries.refused_chunks(conn, session_id)
        moved = transfers.of_session(conn, session_id, whole=args.json) if row["transfers"] else []
        stored = queries.stored_chunks(conn, session_id)
        commands, uncertain_prompt = recorded_commands(session_id, stored)
        # Read from the recording as the commands listed are: it needs no index.
        row = promptflag.with_flag(row, uncertain_prompt)
        decisions = gateway_notices(stored, "policy")
        moderation = gateway_notices(stored, "moderation")
        witness = index_witness(settings, conn, session_id, commands)
        asked = sessionrequests.read_requests(stored)
        forwards = sessionrequests.forwarded(conn, row)
    if args.json:
        document = describe.session_json(row, short, verdict_json(verdict, keys))
        document["commands"] = [
            {"t": hit.t / 1e9, "command": hit.text, "certain": hit.certain} for hit in commands
        ]
        document["index"] = witness
        document.update(asked.as_json())
        document["forwards"] = [forward.as_json() for forward in forwards]
        document["policy_decisions"] = [{"t": t / 1e9, "text": text} for t, text in decisions]
        document["moderation"] = [{"t": t / 1e9, "text": text} for t, text in moderation]
        document["transfers_read"] = row["transfers"]
        document["transfers"] = [transfers.transfer_json(found) for found in moved]
        document["refused"] = refused_json(refused)
        document["holds"] = [holds.as_json(hold) for hold in held]
        print_json(document)
        return 0
    fields = describe.session_fields(
        row,
        local_time(row["started_at"]),
        local_time(row["ended_at"]),
        f"{verdict.status.value}: {verdict.detail}",
        describe.signer_text(verdict.signer, keys),
    )
    for name, value in fields:
        print(f"{name:>12}  {visible(str(value)) if value is not None else '-'}")
    for name, text in sessionrequests.described(asked, forwards):
        print(f"{name:>12}  {visible(text)}")
    for line in refused_lines(refused):
        print(line)
    print(f"{'index':>12}  {witness['status']}" + _detail(witness["detail"]))
    print(f"{'commands':>12}  {len(commands) or 'none'}")
    for hit in commands:
        doubt = "" if hit.certain else "  (?: its prompt could not be told apart)"
        print(f"{clock(hit.t / 1e9):>12}  {visible(hit.text)}{doubt}")
    if decisions:
        print(f"{'decisions':>12}  {len(decisions)} of the command policy")
    for t, text in decisions:
        print(f"{clock(t / 1e9):>12}  {visible(text)}")
    if moderation:
        print(f"{'moderation':>12}  {len(moderation)} events")
    for t, text in moderation:
        print(f"{clock(t / 1e9):>12}  {visible(text)}")
    for line in transfers.session_lines(row, moved):
        print(line)
    for hold in held:  # legal holds, released ones too (docs/operations.md)
        state = "released" if hold["released_at"] is not None else "HELD"
        print(f"{'hold':>12}  {state} {visible(holds.line(hold))}")
    return 0


def _resolve_or_deleted(conn: Connection, prefix: str) -> uuid.UUID:
    """The stored session ``prefix`` names; for a deleted one, a not-found error that
    says what deleted it (its tombstone), as ``verify`` does."""
    try:
        return queries.resolve(conn, prefix)
    except NotFound:
        found = tombstone.find(conn, prefix)
        if len(found) == 1:
            gone = found[0]
            raise NotFound(
                f"session {gone['session_id']} was {visible(tombstone.describe(gone))}"
            ) from None
        raise


def gateway_notices(stored: list[tuple[int, bytes]], code: str) -> list[tuple[int, str]]:
    """The gateway's notices of one kind recorded in the session, with their times (ns
    from the start): ``policy``, the command policy's decisions (the rule, the action,
    the command; for a review who answered, why, and after how long); ``moderation``,
    a moderated session's waits, joins, leaves, pauses (docs/moderation.md). A chunk
    that does not decode is passed over: the session's verification says it is tampered."""
    found: list[tuple[int, str]] = []
    for _, data in stored:
        try:
            chunk = decode_chunk(data)
        except WireError:
            continue
        found += [
            (event.t, event.text)
            for event in chunk.events
            if isinstance(event, Notice) and event.code == code
        ]
    return found


def _detail(text: str) -> str:
    return f": {visible(text)}" if text else ""


def recorded_commands(
    session_id: uuid.UUID, stored: list[tuple[int, bytes]]
) -> tuple[list[search.Hit], bool]:
    """The session's commands read from its stored chunks, as the index reads them, and
    whether its prompt was ``uncertain-prompt``."""
    # Imported here: the terminal emulator is for show, not for every command's start-up.
    from sshtrail.indexsession import recorded_commands as read  # noqa: PLC0415

    names = [field.name for field in dataclasses.fields(search.Hit)]
    found, uncertain_prompt = read(session_id, (data for _, data in stored))
    return [search.Hit(**{name: doc[name] for name in names}) for doc in found], uncertain_prompt


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
    found = search.find(query, lambda: index(settings), lambda: store(settings))
    if "index" in found.unread:
        raise found.unread["index"]  # what sessions showed is what was asked
    if "store" in found.unread:
        if args.kind == "transfer":
            raise found.unread["store"]
        # Searching what sessions showed needs only the index: without a store (or
        # one not reachable) there are no file paths to add, and it says so.
        print("(file transfers not searched: the store cannot be read)", file=sys.stderr)
    hits = found.hits
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


def _iso(moment_: dt.datetime | None) -> str:
    return moment_.isoformat() if moment_ else ""
