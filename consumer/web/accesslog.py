"""``sshtrail access-log``: the web console's access log on the terminal."""

from __future__ import annotations

import argparse
import sys

from consumer.web import access
from sshtrail import queries
from sshtrail.accesschain import Problem, check, stored_rows
from sshtrail.cli.output import chosen_format, print_json, print_listing
from sshtrail.cli.reading import store
from sshtrail.errors import InvalidError
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
            entry.at.isoformat() if csv_ else local_time(entry.at),
            visible(entry.auditor),
            entry.action,
            (str(entry.session_id) if csv_ else entry.session_id.hex[:12])
            if entry.session_id
            else "-",
            visible(entry.address),
            visible(entry.detail) or "-",
        )
        for entry in found
    ]
    print_listing([header, *rows], csv_, "(nothing recorded)")
    return 0


def verify(args: argparse.Namespace, settings: Settings) -> int:
    """``--verify``: the rows against the published heads; 0 when they agree."""
    if any(getattr(args, name) is not None for name in ("auditor", "session", "action", "since")):
        raise InvalidError("--verify checks the whole log: it takes no filter")
    refused: list[str] = []
    heads = access.published_heads(settings, refused)
    with store(settings) as conn:
        report = check(stored_rows(conn), heads)
    if chosen_format(args) == "json":
        print_json(
            {
                "ok": not report.problems,
                "rows": report.rows,
                "chains": report.chains,
                "heads": report.heads,
                "unchained": report.unchained,
                "refused_heads": refused,
                "problems": [_problem_json(p) for p in report.problems],
            }
        )
        return 1 if report.problems else 0
    for problem in report.problems:
        print(f"{_where(problem):<26}  {problem.finding:<11}  {problem.detail}")
    for reason in refused:
        print(f"sshtrail: not a head, ignored: {reason}", file=sys.stderr)
    before = (
        f", {report.unchained} from before the chains (not checked)" if report.unchained else ""
    )
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
