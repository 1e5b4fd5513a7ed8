"""``sshtrail access-log``: who looked at what in the web console, and (``--verify``) whether
the log is whole."""

from __future__ import annotations

import argparse
import datetime as dt
import sys

from consumer.web import access
from sshtrail import accesstrims, queries
from sshtrail.accesschain import Problem, check, stored_rows
from sshtrail.accesstrims import Trim
from sshtrail.commandkit.exits import EXIT_UNVERIFIED
from sshtrail.commandkit.output import chosen_format, print_json, print_listing
from sshtrail.commandkit.reading import store
from sshtrail.errors import BrokerError, InvalidError
from sshtrail.settings import Settings
from sshtrail.textsafe import local_time, visible


def run(args: argparse.Namespace, settings: Settings) -> int:
    if args.verify:
        return verify(args, settings)
    if args.action is not None and args.action not in access.ACTIONS:
        raise InvalidError(f"--action: one of {', '.join(access.ACTIONS)}")
    with store(settings) as conn:
        session_id = queries.resolve(conn, args.session) if args.session else None
        found = access.entries(
            conn,
            auditor=args.auditor,
            session_id=session_id,
            action=args.action,
            since=args.since,
            limit=args.limit,
        )
    shape = chosen_format(args)
    if shape == "json":
        print_json([access.as_json(entry) for entry in found])
        return 0
    header = ("AT", "AUDITOR", "ACTION", "SESSION", "ADDRESS", "DETAIL")
    csv_ = shape == "csv"
    rows = [
        (
            (entry.at.isoformat() if csv_ else local_time(entry.at)) if entry.at else "?",
            visible(entry.auditor),
            visible(entry.action),
            (str(entry.session_id) if csv_ else entry.session_id.hex[:12])
            if entry.session_id
            else "-",
            visible(entry.address),
            visible(_detail(entry)) or "-",
        )
        for entry in found
    ]
    print_listing([header, *rows], csv_, "(nothing recorded)")
    return 0


def _detail(entry: access.Entry) -> str:
    if not entry.unreadable:
        return entry.detail
    return f"[unreadable: {entry.unreadable}] {entry.detail}"


def verify(args: argparse.Namespace, settings: Settings) -> int:
    """``--verify``: the rows against the published heads; 0 when they agree, 1 when
    they do not, :data:`EXIT_UNVERIFIED` when the heads cannot be read."""
    if any(getattr(args, name) is not None for name in ("auditor", "session", "action", "since")):
        raise InvalidError("--verify checks the whole log: it takes no filter")
    refused: list[str] = []
    try:
        heads = access.published_heads(settings, refused)
    except BrokerError as exc:
        print(f"sshtrail: could not verify the access log: {exc}", file=sys.stderr)
        return EXIT_UNVERIFIED
    trusted = accesstrims.trusted_keys(settings)
    with store(settings) as conn:
        report = check(stored_rows(conn), heads, accesstrims.stored(conn, trusted))
    if chosen_format(args) == "json":
        print_json(
            {
                "ok": not report.problems,
                "rows": report.rows,
                "chains": report.chains,
                "heads": report.heads,
                "unchained": report.unchained,
                "unchained_checked": report.pinned,
                "refused_heads": refused,
                "problems": [_problem_json(p) for p in report.problems],
                "trimmed": [_trim_json(t) for t in report.trims],
            }
        )
        return 1 if report.problems else 0
    for problem in report.problems:
        print(f"{_where(problem):<26}  {problem.finding:<11}  {visible(problem.detail)}")
    for reason in refused:
        print(f"sshtrail: not a head, ignored: {reason}", file=sys.stderr)
    for trim in report.trims:
        print(_trimmed(trim))
    checked = "as the chains found them" if report.pinned else "not checked"
    before = f", {report.unchained} from before the chains ({checked})" if report.unchained else ""
    verdict = f"{len(report.problems)} problems" if report.problems else "ok"
    print(
        f"access log: {report.rows} rows in {report.chains} chains{before}, "
        f"{report.heads} heads published; {verdict}"
    )
    return 1 if report.problems else 0


def _where(problem: Problem) -> str:
    low, high = problem.rows
    span = f"row {low}" if low == high else f"rows {low}-{high}"
    if problem.chain is None:
        return f"id {low}" if low == high else f"ids {low}-{high}"
    return f"chain {problem.chain[:12]} {span}"


def _problem_json(problem: Problem) -> dict[str, object]:
    low, high = problem.rows
    where = {"chain": problem.chain, "rows": [low, high]} if problem.chain else {"ids": [low, high]}
    return {"finding": problem.finding, "detail": problem.detail, **where}


def _trimmed(trim: Trim) -> str:
    """What the checkpoint a chain was checked from says (``retention.access_log_keep``)."""
    at = trim.trimmed_at.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    return (
        f"chain {trim.chain[:12]} rows 0-{trim.n} dropped by access_log_keep "
        f"({visible(trim.keep)}) at {at}, chain continued from hash {trim.digest.hex()}"
    )


def _trim_json(trim: Trim) -> dict[str, object]:
    return {
        "chain": trim.chain,
        "rows": [0, trim.n],
        "last_dropped_digest": trim.digest.hex(),
        "trimmed_at": trim.trimmed_at.isoformat(),
        "keep": trim.keep,
    }
