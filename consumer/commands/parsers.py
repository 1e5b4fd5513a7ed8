"""What each consumer-side command is called and takes: one parser function per command,
named for it; its handler is ``consumer.commands.<name>:run``, imported only when it runs
(docs/performance.md, "CLI start-up")."""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import Any

from sshtrail.commandkit.arguments import future_moment, http_url, moment, port, ranged
from sshtrail.commandkit.output import format_options

#: What ``lag --watch`` judges each partition by: the readings of this many seconds.
WATCH_WINDOW_S = 30.0
SECONDS = ranged(float, 0.0, 3600.0, "a number of seconds from 0 to 3600")
INTERVAL = ranged(float, 1.0, 3600.0, "a number of seconds from 1 to 3600")


def _reason(text: str) -> str:
    if not text.strip() or len(text) > 500:
        raise argparse.ArgumentTypeError("give a reason of 1 to 500 characters")
    return text.strip()


def _signin_id(text: str) -> str:
    if not re.fullmatch(r"[0-9a-f]{4,32}", text):
        raise argparse.ArgumentTypeError("a sign-in id is 4 to 32 hex digits (web sessions)")
    return text


def _auditor_name(text: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9._@+-]{1,128}", text):
        raise argparse.ArgumentTypeError("an auditor's name is 1 to 128 of A-Z a-z 0-9 . _ @ + -")
    return text


#: ``--partition`` of the commands that read the topic.
_PARTITION: dict[str, Any] = {
    "type": ranged(int, 0, None, "a partition number (0 or more)"),
    "action": "append",
    "metavar": "P",
    "help": "only this partition (repeatable; default all)",
}

#: The options every request to the gateways takes.
_REASON: dict[str, Any] = {"required": True, "metavar": "TEXT", "type": _reason}
_WAIT: dict[str, Any] = {
    "type": ranged(float, 1.0, 300.0, "1 to 300 seconds"),
    "default": 10.0,
    "metavar": "S",
    "help": "how long to wait for a gateway's answer (default 10)",
}
#: How far back the lists read from the control topic look (reviews, moderated sessions).
_HOURS: dict[str, Any] = {
    "type": ranged(float, 0.01, 24 * 30, "0.01 to 720 hours"),
    "default": 24.0,
    "metavar": "H",
    "help": "how far back to look (default 24)",
}
_AS: dict[str, Any] = {
    "dest": "as_",
    "metavar": "NAME",
    "help": "the requester's name in the record (default: your user name)",
}


def terminate(commands: Any) -> None:
    terminate = commands.add_parser(
        "terminate",
        help="end an active session now: the operator is told why, the end is recorded",
        description="Ask the gateways (control topic, signed with the control key) to end "
        "session ID. The gateway holding it writes the reason on the operator's terminal, "
        "closes the session and records its end as 'terminated by NAME: REASON'. Exits 0 "
        "when done, 1 when it had already ended or no gateway answered, 3 for an unknown id.",
    )
    terminate.add_argument("session", metavar="ID", help="session id or unique prefix")
    terminate.add_argument("--reason", help="why (shown to the operator, recorded)", **_REASON)
    terminate.add_argument("--wait", **_WAIT)
    terminate.add_argument("--as", **_AS)
    terminate.set_defaults(handler="consumer.commands.terminate:run")


def reviews(commands: Any) -> None:
    parser = commands.add_parser(
        "reviews",
        help="commands held at the gateways for an auditor's approval (four eyes)",
        description="List the reviews asked for on the control topic (docs/policy.md): "
        "by default those still waiting for an answer. Exits 0 when it lists some, 1 when "
        "none.",
    )
    parser.add_argument(
        "--all", action="store_true", help="every review of the look-back, with how it ended"
    )
    parser.add_argument("--hours", **_HOURS)
    format_options(parser, "a review")
    parser.set_defaults(handler="consumer.commands.reviews:run_list")


def review(commands: Any) -> None:
    parser = commands.add_parser(
        "review",
        help="approve or deny a command held for review",
        description="Answer review ID (as 'sshtrail reviews' shows it, 8 characters or "
        "more) on the control topic, signed with the control key. The gateway holding it "
        "runs the command (approve) or drops it and tells the operator who denied it and "
        "why (deny). Nobody may answer a review of their own command. Exits 0 when the "
        "gateway took the answer, 1 when it refused it or did not answer, 2 for one's "
        "own command, 3 for an unknown id.",
    )
    parser.add_argument("review", metavar="ID", help="the review's id or a unique start of it")
    parser.add_argument("answer", choices=("approve", "deny"))
    parser.add_argument("--reason", help="why (shown to the operator, recorded)", **_REASON)
    parser.add_argument("--wait", **_WAIT)
    parser.add_argument("--as", **_AS)
    parser.set_defaults(handler="consumer.commands.reviews:run_answer")


def lock(commands: Any) -> None:
    _locking(commands, "lock", "refuse")


def unlock(commands: Any) -> None:
    _locking(commands, "unlock", "allow again")


def _locking(commands: Any, name: str, verb: str) -> None:
    parser = commands.add_parser(
        name,
        help=f"{verb} new sessions of an operator on every gateway",
        description=f"Ask every gateway to {verb} new sessions of OPERATOR until "
        + (
            "'sshtrail unlock'. With --end-sessions, their active sessions end too. "
            if name == "lock"
            else "locked again. "
        )
        + "The request stays on the control topic: gateways started later apply it.",
    )
    parser.add_argument("operator", metavar="OPERATOR")
    parser.add_argument("--reason", help="why (shown to the operator, recorded)", **_REASON)
    if name == "lock":
        parser.add_argument(
            "--end-sessions", action="store_true", help="also end their active sessions"
        )
    parser.add_argument("--wait", **_WAIT)
    parser.add_argument("--as", **_AS)
    parser.set_defaults(handler="consumer.commands.lock:run")


def locks(commands: Any) -> None:
    parser = commands.add_parser(
        "locks",
        help="the operators locked now: who locked them, when, why",
        description="List the operators locked on the control topic, as the gateways "
        "decide: for each operator the lock or unlock signed last by a trusted control key "
        "(control.trusted_keys). Exits 0 when it lists some, 1 when none.",
    )
    parser.add_argument(
        "--all", action="store_true", help="the operators unlocked too (their last unlock)"
    )
    format_options(parser, "an operator")
    parser.set_defaults(handler="consumer.commands.locks:run")


def web(commands: Any) -> None:
    web = commands.add_parser(
        "web",
        help="serve the auditors' web console (sessions, search, player, access log)",
        description="Serve the web console on web.listen:web.port (default 127.0.0.1:8022) "
        "until Ctrl-C or SIGTERM: auditors (the auditors settings) sign in, list, search, "
        "replay and download the sessions of their scope; admins also see the consumer lag "
        "and the access log. HTTPS with web.tls_cert and web.tls_key; behind a reverse proxy, "
        "web.trusted_proxies. docs/operations.md, 'Web console'.",
    )
    web.add_argument("--listen", metavar="ADDRESS", help="address (default: web.listen)")
    web.add_argument("--port", type=port, help="port (default: web.port, 8022)")
    web.set_defaults(handler="consumer.commands.web:run")
    actions = web.add_subparsers(dest="what", metavar="ACTION")
    sessions = actions.add_parser(
        "sessions",
        help="who is signed in to the console: id, auditor, how, created, last seen, expiry",
        description="List the console's sign-ins in use, newest first (--all: those that "
        "ended too, with their state: signed out, revoked, expired, idle). They are kept "
        "in the store, so every console process shares them.",
    )
    sessions.add_argument(
        "--all", action="store_true", help="also sign-ins that ended (kept 30 days)"
    )
    format_options(sessions, csv_rows="one row per sign-in")
    sessions.set_defaults(handler="consumer.commands.web_sessions:run_list")
    revoke = actions.add_parser(
        "revoke",
        help="sign an auditor out of the console now, in every console process",
        description="End a console sign-in (ID, or a unique prefix of it, from 'web "
        "sessions') or every sign-in of --user NAME. The auditor is signed out at their "
        "next request; the revocation is written to the access log. Exits 0 when done, 1 "
        "when nothing was in use, 3 for an unknown or ambiguous id.",
    )
    revoke.add_argument("id", nargs="?", metavar="ID", type=_signin_id, help="sign-in id prefix")
    revoke.add_argument("--user", metavar="NAME", type=_auditor_name, help="all of their sign-ins")
    revoke.add_argument("--reason", help="why (recorded in the access log)", **_REASON)
    revoke.add_argument("--as", **_AS)
    revoke.set_defaults(handler="consumer.commands.web_sessions:run_revoke")


def access_log(commands: Any) -> None:
    log = commands.add_parser(
        "access-log",
        help="who looked at what in the web console: sign-ins, views, replays, searches, exports",
        description="Print the web console's access log, newest first: every sign-in (and "
        "failed one), sessions list, session view, replay, search with its text, export and "
        "admin page view, with the auditor, the client address and the session.",
    )
    log.add_argument("--auditor", metavar="NAME", help="only this auditor's")
    log.add_argument("--session", metavar="ID", help="only about this session (id or prefix)")
    log.add_argument("--action", metavar="ACTION", help="only this action (login, view, ...)")
    log.add_argument("--since", type=moment, help="only since (2h, 7d or an ISO time)")
    log.add_argument(
        "--limit", type=ranged(int, 1, 1_000_000, "1 to 1000000"), default=100, help="at most"
    )
    log.add_argument(
        "--verify",
        action="store_true",
        help="check the log's hash chains against the heads published on web.access_log_topic: "
        "rows deleted, altered or inserted, a cut tail; exits 1 if any",
    )
    format_options(log, csv_rows="one row per entry")
    log.set_defaults(handler="consumer.commands.access_log:run")


def store(commands: Any) -> None:
    store = commands.add_parser(
        "store",
        help="run a member of the consumer group that persists sessions to the database",
        description="Read the sessions topic as a member of the store group and write every "
        "chunk and session row to the database (database.url). Run as many as the topic has "
        "partitions; they share the work. SIGTERM finishes the batch in hand and leaves.",
    )
    _member_options(store, "store_group")
    store.set_defaults(handler="consumer.commands.store:run")


def index(commands: Any) -> None:
    index = commands.add_parser(
        "index",
        help="run a member of the consumer group that makes sessions searchable",
        description="Read the sessions topic as a member of the index group and index what "
        "each session showed: output lines and commands (resolved through a terminal "
        "emulator), exec commands and session metadata, into search.url (SQLite FTS5 by "
        "default, PostgreSQL pg_trgm). Independent of the store group.",
    )
    _member_options(index, "index_group")
    index.add_argument(
        "--rebuild",
        action="store_true",
        help="drop the search index and index every stored session again from "
        "the store's chunks, then exit (stop the index group first)",
    )
    index.set_defaults(handler="consumer.commands.index:run")


def alert(commands: Any) -> None:
    alert = commands.add_parser(
        "alert",
        help="run a member of the consumer group that raises Sigma alerts",
        description="Read the sessions topic as a member of the alert group: every command "
        "(typed at a prompt, or an exec request) is read as the index reads it and matched "
        "against the Sigma rules of alerts.rules; each alert is stored (the alerts table), "
        "published on alerts.topic and POSTed to the webhooks. docs/alerts.md.",
    )
    _member_options(alert, "alert_group")
    alert.set_defaults(handler="consumer.commands.alert:run")


def alerts(commands: Any) -> None:
    alerts = commands.add_parser(
        "alerts",
        help="the alerts Sigma rules raised; (alerts rules) the rules; (alerts hunt) a rule "
        "over stored sessions",
        description="List stored alerts, newest first (exit 1 when none). 'alerts rules' "
        "lists the rule files of alerts.rules with their status: active, needs field X "
        "(a field sshtrail cannot fill), or invalid with the reason. 'alerts hunt RULE.yml' "
        "runs rules over the stored sessions.",
    )
    alerts.add_argument("--since", type=moment, help="only since (2h, 7d or an ISO time)")
    alerts.add_argument("--level", help="only this level (low, medium, high, critical)")
    alerts.add_argument("--rule", metavar="ID", help="only this rule (its id or title)")
    alerts.add_argument("--operator", metavar="NAME")
    alerts.add_argument("--target", metavar="NAME")
    alerts.add_argument("--session", metavar="ID", help="only this session (id or prefix)")
    alerts.add_argument(
        "--limit", type=ranged(int, 1, 1_000_000, "1 to 1000000"), default=100, help="at most"
    )
    format_options(alerts, csv_rows="one row per alert")
    alerts.set_defaults(handler="consumer.commands.alerts:run")
    actions = alerts.add_subparsers(dest="what", metavar="ACTION")
    rules = actions.add_parser(
        "rules",
        help="the rule files of alerts.rules and their status",
        description="List the rule files of alerts.rules with their status: active, needs "
        "field X (a field sshtrail cannot fill), or invalid with the reason.",
    )
    format_options(rules, csv_rows="one row per rule file")
    rules.set_defaults(handler="consumer.commands.alerts:run_rules")
    hunt = actions.add_parser(
        "hunt",
        help="run Sigma rule files over the stored sessions (read-only)",
        description="Read every stored session (or those the options name) as the alert "
        "group reads it live -- the same command reader, events and evaluator -- and print "
        "one row per command a rule matches, oldest first: a rule written today "
        "finds last month's sessions. Read-only: nothing is written to the alerts table, "
        "published on alerts.topic or sent to a webhook. Exits 0 with hits, 1 with none, 2 "
        "for a rule file that cannot be used (which file, and why) or a bad argument.",
    )
    hunt.add_argument("files", nargs="+", type=Path, metavar="RULE.yml", help="Sigma rule files")
    hunt.add_argument(
        "--since", type=moment, help="only commands run since (2h, 30d or an ISO time)"
    )
    hunt.add_argument("--operator", metavar="NAME", help="only this operator's sessions")
    hunt.add_argument("--target", metavar="NAME", help="only sessions on this target")
    hunt.add_argument("--session", metavar="ID", help="only this session (id or prefix)")
    hunt.add_argument(
        "--limit",
        type=ranged(int, 1, 1_000_000, "1 to 1000000"),
        default=1000,
        help="stop after this many hits (default 1000)",
    )
    format_options(hunt, csv_rows="one row per hit")
    hunt.set_defaults(handler="consumer.commands.alerts:run_hunt")


def lag(commands: Any) -> None:
    lag = commands.add_parser(
        "lag",
        help="consumer lag and status per group and partition, as the broker reports it",
        description="For each group (default: the store and index groups) and partition: "
        "status, committed offset, log-end offset, lag, age of the oldest unconsumed message "
        "('-' when it cannot be read), and the member that owns it; then each group's status "
        "and totals. Statuses: OK, WARN (lag growing), STALL (owned, lag, no commit), STOP "
        "(lag, no member), REWIND (committed offset went back), DATA-LOSS (committed below "
        "what the broker retains); STALL, WARN and REWIND need readings over time (--window, "
        "--watch). Exits 0 when every partition is OK, 1 on WARN, 2 on any other status, "
        "an unknown group or an unreachable broker.",
    )
    lag.add_argument("--group", action="append", metavar="G", help="only this group (repeatable)")
    format_options(lag, csv_rows="one row per partition")
    lag.add_argument(
        "--window",
        type=SECONDS,
        default=0.0,
        metavar="S",
        help="read every second for S seconds and judge over them (default: one reading)",
    )
    lag.add_argument(
        "--gateway-metrics",
        action="append",
        type=http_url,
        metavar="URL",
        help="a gateway's /metrics, for end-to-end lag (repeatable; default: this settings "
        "file's gateway.metrics_port, if set)",
    )
    lag.add_argument(
        "--watch",
        action="store_true",
        help=f"refresh every 2 s until Ctrl-C, judging over the last {WATCH_WINDOW_S:.0f} s",
    )
    lag.set_defaults(handler="consumer.commands.lag:run")


def lag_exporter(commands: Any) -> None:
    exporter = commands.add_parser(
        "lag-exporter",
        help="serve every group's lag and status to Prometheus, computed from the broker",
        description="Read the lag and status of each group (default: the store and index "
        "groups) every --interval seconds, as 'lag' does, and serve them on /metrics: "
        "sshtrail_consumergroup_lag, _lag_seconds, _status, _group_status, _up and more "
        "(docs/operations.md). Independent of the members, so lag stays visible when they "
        "are all down. Runs until Ctrl-C or SIGTERM.",
    )
    exporter.add_argument("--group", action="append", metavar="G", help="this group (repeatable)")
    exporter.add_argument("--listen", default="127.0.0.1", help="address (default 127.0.0.1)")
    exporter.add_argument(
        "--port", type=port, default=9310, help="port (default 9310; 0: any free one)"
    )
    exporter.add_argument(
        "--interval", type=INTERVAL, default=15.0, metavar="S", help="seconds between readings"
    )
    exporter.add_argument(
        "--gateway-metrics",
        action="append",
        type=http_url,
        metavar="URL",
        help="a gateway's /metrics, for sshtrail_end_to_end_lag_seconds (repeatable)",
    )
    exporter.set_defaults(handler="consumer.commands.lag_exporter:run")


def reprocess(commands: Any) -> None:
    again = commands.add_parser(
        "reprocess",
        help="re-consume an offset or time range into the store or the index",
        description="Read a range of the sessions topic with a consumer that commits no group "
        "offsets and write it through the group's idempotent writer: what is already there "
        "is counted as a duplicate, what is missing is restored. The range is [from, to); "
        "without --to-*, up to the log end at the start.",
    )
    again.add_argument("--group", choices=("store", "index"), required=True)
    again.add_argument("--partition", **_PARTITION)
    start = again.add_mutually_exclusive_group(required=True)
    start.add_argument("--from-offset", type=int, metavar="N")
    start.add_argument("--from-time", type=moment, metavar="T", help="2h ago, or ISO time")
    end = again.add_mutually_exclusive_group()
    end.add_argument("--to-offset", type=int, metavar="M")
    end.add_argument("--to-time", type=moment, metavar="T")
    again.add_argument(
        "--dry-run",
        action="store_true",
        help="print what would be read from each partition, read and write nothing",
    )
    again.set_defaults(handler="consumer.commands.reprocess:run")


def completeness(commands: Any) -> None:
    whole = commands.add_parser(
        "completeness",
        help="prove the store lost nothing: every offset committed past is stored or dead-lettered",
        description="For each partition of the sessions topic, read every message below the "
        "store group's committed offset and check it is stored, in the dead-letter topic, or "
        "of a quarantined session. Reports missing offsets, and as DATA-LOSS offsets the "
        "broker deleted (retention) before the group read them. Exits 1 if anything is "
        "missing or lost. Reads the topic: bound it with --partition or --since.",
    )
    whole.add_argument("--group", metavar="G", help="default: consumer.store_group")
    whole.add_argument("--partition", **_PARTITION)
    whole.add_argument(
        "--since",
        type=moment,
        metavar="T",
        help="only messages published at or after T (2h ago, or ISO time)",
    )
    whole.add_argument("--json", action="store_true")
    whole.set_defaults(handler="consumer.commands.completeness:run")


def watch(commands: Any) -> None:
    watch = commands.add_parser(
        "watch",
        help="follow a session live from Kafka as it happens",
        description="Render a session's output live, read from its partition from its first "
        "chunk on, until it ends or Ctrl-C. Like replay, what the session drew reaches your "
        "terminal, but nothing that would make it answer, set its clipboard or title, or "
        "leave it in another mode (--raw: the bytes exactly as recorded).",
    )
    watch.add_argument("session", metavar="SID", help="session id, or a unique prefix if stored")
    watch.add_argument(
        "--raw",
        action="store_true",
        help="write the output bytes exactly as recorded, without the terminal filter",
    )
    watch.add_argument(
        "--moderate",
        action="store_true",
        help="be present as a moderator while watching (a moderated session, "
        "docs/moderation.md): the session runs only while enough moderators watch",
    )
    watch.add_argument(
        "--as",
        dest="as_",
        metavar="NAME",
        help="with --moderate: the moderator's name, as the policy's [[moderation]] "
        "tables name them (default: your user name); their groups are those of the "
        "auditor of that name in the settings",
    )
    watch.set_defaults(handler="consumer.commands.watch:run")


def moderate(commands: Any) -> None:
    parser = commands.add_parser(
        "moderate",
        help="moderated sessions waiting for a moderator",
        description="List the moderated sessions of the control topic (docs/moderation.md): "
        "by default those waiting for a moderator to start or paused until one is back. "
        "Join one with 'sshtrail watch --moderate SID'. Exits 0 when it lists some, 1 when "
        "none.",
    )
    parser.add_argument(
        "--all",
        action="store_true",
        help="every moderated session of the look-back, running and ended too",
    )
    parser.add_argument("--hours", **_HOURS)
    format_options(parser, "a moderated session")
    parser.set_defaults(handler="consumer.commands.moderate:run")


def retention(commands: Any) -> None:
    parser = commands.add_parser(
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
    show = actions.add_parser("show", help="per rule: sessions, bytes, due, next deletion")
    show.add_argument("--at", type=moment, help="as at this time (2h ago, or an ISO time)")
    format_options(show, csv_rows="one row per rule")
    show.set_defaults(handler="consumer.commands.retention:run_show")
    plan = actions.add_parser("plan", help="the sessions that would be deleted, not deleted")
    plan.add_argument(
        "--at",
        type=future_moment,
        help="at this time (default now): an ISO time, or a duration from now (+7d)",
    )
    format_options(plan, csv_rows="one row per session")
    plan.set_defaults(handler="consumer.commands.retention:run_plan")


def hold(commands: Any) -> None:
    parser = commands.add_parser(
        "hold",
        help="legal holds: sessions no rule and no one may delete (add, list, release)",
        description="A legal hold keeps the sessions it names -- one session, or every "
        "session of an operator, of a target or started in a time range -- from deletion by "
        "any path (retention, 'sshtrail delete') until it is released. Placing and releasing "
        "are recorded with who, when and why.",
    )
    actions = parser.add_subparsers(dest="what", metavar="ACTION", required=True)
    add = actions.add_parser("add", help="place a hold")
    add.add_argument("session", nargs="?", metavar="SID", help="one session (id or prefix)")
    add.add_argument("--operator", metavar="NAME", type=_name, help="every session of")
    add.add_argument("--target", metavar="NAME", type=_name, help="every session on")
    add.add_argument("--since", type=moment, help="sessions started since (ISO time or 7d)")
    add.add_argument("--until", type=moment, help="sessions started until")
    add.add_argument("--reason", **_REASON)
    add.add_argument("--case", required=True, type=_case, metavar="ID", help="the case id")
    add.add_argument("--as", **_AS)
    add.set_defaults(handler="consumer.commands.hold:run_add")
    listed = actions.add_parser("list", help="holds, newest first")
    listed.add_argument("--all", action="store_true", help="released ones too")
    format_options(listed, csv_rows="one row per hold")
    listed.set_defaults(handler="consumer.commands.hold:run_list")
    release = actions.add_parser("release", help="release a hold (it stays in the record)")
    release.add_argument("hold_id", metavar="ID", type=_hold_id, help="the hold (id or prefix)")
    release.add_argument("--reason", **_REASON)
    release.add_argument("--as", **_AS)
    release.set_defaults(handler="consumer.commands.hold:run_release")


def delete(commands: Any) -> None:
    parser = commands.add_parser(
        "delete",
        help="delete a session now (a GDPR request), leaving a signed tombstone",
        description="Delete a stored session -- chunks, row, transfers, alerts; the index "
        "drops its documents -- and keep a tombstone signed by the deletion key naming you "
        "and your reason. Refused (exit 1) for a session under legal hold. Exits 3 for no "
        "such session.",
    )
    parser.add_argument("session", metavar="SID", help="the session (id or prefix)")
    parser.add_argument("--reason", **_REASON)
    parser.add_argument("--as", **_AS)
    parser.set_defaults(handler="consumer.commands.delete:run")


def deletions(commands: Any) -> None:
    parser = commands.add_parser(
        "deletions",
        help="the sessions deleted: by which rule or person, when, and the chain they had",
        description="List the tombstones of deleted sessions, newest first, each checked "
        "against its signature (exit 1 when one does not hold).",
    )
    parser.add_argument("--since", type=moment, help="only deleted since (7d or an ISO time)")
    parser.add_argument(
        "--limit", type=ranged(int, 1, 1_000_000, "1 to 1000000"), default=1000, help="at most"
    )
    format_options(parser, csv_rows="one row per deleted session")
    parser.set_defaults(handler="consumer.commands.deletions:run")


def _name(text: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9._-]{1,249}", text):
        raise argparse.ArgumentTypeError("a name of letters, digits, '.', '_' and '-'")
    return text


def _case(text: str) -> str:
    if not re.fullmatch(r"[\x21-\x7e]{1,128}", text):
        raise argparse.ArgumentTypeError("a case id of 1 to 128 printable characters, no spaces")
    return text


def _hold_id(text: str) -> str:
    if not re.fullmatch(r"[0-9a-f]{4,32}", text):
        raise argparse.ArgumentTypeError("a hold id: 4 to 32 hex digits")
    return text


def _member_options(parser: argparse.ArgumentParser, group_key: str) -> None:
    parser.add_argument(
        "--group", type=_group_name, help=f"consumer group id (default: consumer.{group_key})"
    )
    parser.add_argument(
        "--instance-id",
        type=_group_name,
        metavar="ID",
        help="static member id: a restarted member with the same id takes "
        "its partitions back at once (default: consumer.instance_id)",
    )
    parser.add_argument(
        "--metrics-port",
        type=port,
        metavar="PORT",
        help="serve Prometheus /metrics on this port (0: off; default: consumer.metrics_port)",
    )


def _group_name(text: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9._-]{1,249}", text):
        raise argparse.ArgumentTypeError(f"{text!r} is not a valid id (letters, digits, . _ -)")
    return text
