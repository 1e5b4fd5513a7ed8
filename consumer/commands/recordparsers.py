"""What the consumer side's commands over the stored record are called and take: the
alerts (and hunting with a rule), the console's access log, retention, legal holds and
deletions. One parser function per command, as in :mod:`consumer.commands.parsers`; the
handlers are imported only when they run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sshtrail.commandkit.arguments import future_moment, matching, moment
from sshtrail.commandkit.options import (
    command,
    flag,
    limit,
    reason,
    requester,
    since,
    why_and_who,
)
from sshtrail.commandkit.output import format_options

_name = matching(r"[A-Za-z0-9._-]{1,249}", "a name of letters, digits, '.', '_' and '-'")
_case = matching(r"[\x21-\x7e]{1,128}", "a case id of 1 to 128 printable characters, no spaces")
_hold_id = matching(r"[0-9a-f]{4,32}", "a hold id: 4 to 32 hex digits")


def alerts(commands: Any) -> None:
    alerts = command(
        commands,
        "alerts",
        "consumer.commands.alerts:run",
        help="the alerts Sigma rules raised; (alerts rules) the rules; (alerts hunt) a rule "
        "over stored sessions",
        description="List stored alerts, newest first (exit 1 when none). 'alerts rules' "
        "lists the rule files of alerts.rules with their status: active, needs field X "
        "(a field sshtrail cannot fill), or invalid with the reason. 'alerts hunt RULE.yml' "
        "runs rules over the stored sessions.",
    )
    since(alerts, "only since (2h, 7d or an ISO time)")
    alerts.add_argument("--level", help="only this level (low, medium, high, critical)")
    alerts.add_argument("--rule", metavar="ID", help="only this rule (its id or title)")
    alerts.add_argument("--operator", metavar="NAME")
    alerts.add_argument("--target", metavar="NAME")
    alerts.add_argument("--session", metavar="ID", help="only this session (id or prefix)")
    limit(alerts, 100)
    format_options(alerts, csv_rows="one row per alert")
    actions = alerts.add_subparsers(dest="what", metavar="ACTION")
    rules = command(
        actions,
        "rules",
        "consumer.commands.alerts:run_rules",
        help="the rule files of alerts.rules and their status",
        description="List the rule files of alerts.rules with their status: active, needs "
        "field X (a field sshtrail cannot fill), or invalid with the reason.",
    )
    format_options(rules, csv_rows="one row per rule file")
    hunt = command(
        actions,
        "hunt",
        "consumer.commands.alerts:run_hunt",
        help="run Sigma rule files over the stored sessions (read-only)",
        description="Read every stored session (or those the options name) as the alert "
        "group reads it live -- the same command reader, events and evaluator -- and print "
        "one row per command a rule matches, oldest first: a rule written today "
        "finds last month's sessions. Read-only: nothing is written to the alerts table, "
        "published on alerts.topic or sent to a webhook. Exits 0 with hits, 1 with none, 2 "
        "for a rule file that cannot be used (which file, and why) or a bad argument.",
    )
    hunt.add_argument("files", nargs="+", type=Path, metavar="RULE.yml", help="Sigma rule files")
    since(hunt, "only commands run since (2h, 30d or an ISO time)")
    hunt.add_argument("--operator", metavar="NAME", help="only this operator's sessions")
    hunt.add_argument("--target", metavar="NAME", help="only sessions on this target")
    hunt.add_argument("--session", metavar="ID", help="only this session (id or prefix)")
    limit(hunt, 1000, "stop after this many hits (default 1000)")
    format_options(hunt, csv_rows="one row per hit")


def access_log(commands: Any) -> None:
    log = command(
        commands,
        "access-log",
        "consumer.commands.access_log:run",
        help="who looked at what in the web console: sign-ins, views, replays, searches, exports",
        description="Print the web console's access log, newest first: every sign-in (and "
        "failed one), sessions list, session view, replay, search with its text, export and "
        "admin page view, with the auditor, the client address and the session.",
    )
    log.add_argument("--auditor", metavar="NAME", help="only this auditor's")
    log.add_argument("--session", metavar="ID", help="only about this session (id or prefix)")
    log.add_argument("--action", metavar="ACTION", help="only this action (login, view, ...)")
    since(log, "only since (2h, 7d or an ISO time)")
    limit(log, 100)
    flag(
        log,
        "--verify",
        "check the log's hash chains against the heads published on web.access_log_topic: "
        "rows deleted, altered or inserted, a cut tail; exits 1 if any",
    )
    format_options(log, csv_rows="one row per entry")


def retention(commands: Any) -> None:
    parser = command(
        commands,
        "retention",
        help="the retention rules: what each keeps, what is due (show); what would be "
        "deleted (plan)",
        description="'retention show' explains each [[retention.rule]]: the sessions and "
        "bytes it decides, how many are due for deletion (overdue: past delete_after; held: "
        "named by a legal hold) and when the next deletion falls due. 'retention plan' "
        "lists the sessions that would be deleted at --at (default now), without deleting. "
        "The store group deletes them (docs/operations.md, 'Retention and legal hold').",
    )
    actions = parser.add_subparsers(dest="what", metavar="ACTION", required=True)
    show = command(
        actions,
        "show",
        "consumer.commands.retention:run_show",
        help="per rule: sessions, bytes, due, next deletion",
    )
    show.add_argument("--at", type=moment, help="as at this time (2h ago, or an ISO time)")
    format_options(show, csv_rows="one row per rule")
    plan = command(
        actions,
        "plan",
        "consumer.commands.retention:run_plan",
        help="the sessions that would be deleted, not deleted",
    )
    plan.add_argument(
        "--at",
        type=future_moment,
        help="at this time (default now): an ISO time, or a duration from now (+7d)",
    )
    format_options(plan, csv_rows="one row per session")


def hold(commands: Any) -> None:
    parser = command(
        commands,
        "hold",
        help="legal holds: sessions no rule and no one may delete (add, list, release)",
        description="A legal hold keeps the sessions it names -- one session, or every "
        "session of an operator, of a target or started in a time range -- from deletion by "
        "any path (retention, 'sshtrail delete') until it is released. Placing and releasing "
        "are recorded with who, when and why.",
    )
    actions = parser.add_subparsers(dest="what", metavar="ACTION", required=True)
    add = command(actions, "add", "consumer.commands.hold:run_add", help="place a hold")
    add.add_argument("session", nargs="?", metavar="SID", help="one session (id or prefix)")
    add.add_argument("--operator", metavar="NAME", type=_name, help="every session of")
    add.add_argument("--target", metavar="NAME", type=_name, help="every session on")
    since(add, "sessions started since (ISO time or 7d)")
    add.add_argument("--until", type=moment, help="sessions started until")
    reason(add)
    add.add_argument("--case", required=True, type=_case, metavar="ID", help="the case id")
    requester(add)
    listed = command(actions, "list", "consumer.commands.hold:run_list", help="holds, newest first")
    flag(listed, "--all", "released ones too")
    format_options(listed, csv_rows="one row per hold")
    release = command(
        actions,
        "release",
        "consumer.commands.hold:run_release",
        help="release a hold (it stays in the record)",
    )
    release.add_argument("hold_id", metavar="ID", type=_hold_id, help="the hold (id or prefix)")
    why_and_who(release)


def delete(commands: Any) -> None:
    parser = command(
        commands,
        "delete",
        "consumer.commands.delete:run",
        help="delete a session now (a GDPR request), leaving a signed tombstone",
        description="Delete a stored session -- chunks, row, transfers, alerts; the index "
        "drops its documents -- and keep a tombstone signed by the deletion key naming you "
        "and your reason. Refused (exit 1) for a session under legal hold. Exits 3 for no "
        "such session.",
    )
    parser.add_argument("session", metavar="SID", help="the session (id or prefix)")
    why_and_who(parser)


def deletions(commands: Any) -> None:
    parser = command(
        commands,
        "deletions",
        "consumer.commands.deletions:run",
        help="the sessions deleted: by which rule or person, when, and the chain they had",
        description="List the tombstones of deleted sessions, newest first, each checked "
        "against its signature (exit 1 when one does not hold).",
    )
    since(parser, "only deleted since (7d or an ISO time)")
    limit(parser, 1000)
    format_options(parser, csv_rows="one row per deleted session")
