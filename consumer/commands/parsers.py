"""What the consumer side's processes and topic readers are called and take: the group
members (store, index, alert), the web console, lag and its exporter, reprocess,
completeness and watch. One parser function per command, named for it; its handler is
``consumer.commands.<name>:run``, imported only when it runs (docs/performance.md, "CLI
start-up"). The requests to the gateways are declared in
:mod:`consumer.commands.controlparsers`, the commands over the stored record in
:mod:`consumer.commands.recordparsers`."""

from __future__ import annotations

import argparse
from typing import Any

from sshtrail.commandkit.arguments import http_url, matching, moment, port, ranged
from sshtrail.commandkit.options import command, flag, since, why_and_who
from sshtrail.commandkit.output import format_options

#: What ``lag --watch`` judges each partition by: the readings of this many seconds.
WATCH_WINDOW_S = 30.0
SECONDS = ranged(float, 0.0, 3600.0, "a number of seconds from 0 to 3600")
INTERVAL = ranged(float, 1.0, 3600.0, "a number of seconds from 1 to 3600")

_signin_id = matching(r"[0-9a-f]{4,32}", "a sign-in id is 4 to 32 hex digits (web sessions)")
_auditor_name = matching(
    r"[A-Za-z0-9._@+-]{1,128}", "an auditor's name is 1 to 128 of A-Z a-z 0-9 . _ @ + -"
)
_group_name = matching(
    r"[A-Za-z0-9._-]{1,249}", "{text!r} is not a valid id (letters, digits, . _ -)"
)


def store(commands: Any) -> None:
    store = command(
        commands,
        "store",
        "consumer.commands.store:run",
        help="run a member of the consumer group that persists sessions to the database",
        description="Read the sessions topic as a member of the store group and write every "
        "chunk and session row to the database (database.url). Run as many as the topic has "
        "partitions; they share the work. SIGTERM finishes the batch in hand and leaves.",
    )
    _member_options(store, "store_group")


def index(commands: Any) -> None:
    index = command(
        commands,
        "index",
        "consumer.commands.index:run",
        help="run a member of the consumer group that makes sessions searchable",
        description="Read the sessions topic as a member of the index group and index what "
        "each session showed: output lines and commands (resolved through a terminal "
        "emulator), exec commands and session metadata, into search.url (SQLite FTS5 by "
        "default, PostgreSQL pg_trgm). Independent of the store group.",
    )
    _member_options(index, "index_group")
    flag(
        index,
        "--rebuild",
        "drop the search index and index every stored session again from "
        "the store's chunks, then exit (stop the index group first)",
    )


def alert(commands: Any) -> None:
    alert = command(
        commands,
        "alert",
        "consumer.commands.alert:run",
        help="run a member of the consumer group that raises Sigma alerts",
        description="Read the sessions topic as a member of the alert group: every command "
        "(typed at a prompt, or an exec request) is read as the index reads it and matched "
        "against the Sigma rules of alerts.rules; each alert is stored (the alerts table), "
        "published on alerts.topic and POSTed to the webhooks. docs/alerts.md.",
    )
    _member_options(alert, "alert_group")


def web(commands: Any) -> None:
    web = command(
        commands,
        "web",
        "consumer.commands.web:run",
        help="serve the auditors' web console (sessions, search, player, access log)",
        description="Serve the web console on web.listen:web.port (default 127.0.0.1:8022) "
        "until Ctrl-C or SIGTERM: auditors (the auditors settings) sign in, list, search, "
        "replay and download the sessions of their scope; admins also see the consumer lag "
        "and the access log. HTTPS with web.tls_cert and web.tls_key; behind a reverse proxy, "
        "web.trusted_proxies. docs/operations.md, 'Web console'.",
    )
    web.add_argument("--listen", metavar="ADDRESS", help="address (default: web.listen)")
    web.add_argument("--port", type=port, help="port (default: web.port, 8022)")
    actions = web.add_subparsers(dest="what", metavar="ACTION")
    sessions = command(
        actions,
        "sessions",
        "consumer.commands.web_sessions:run_list",
        help="who is signed in to the console: id, auditor, how, created, last seen, expiry",
        description="List the console's sign-ins in use, newest first (--all: those that "
        "ended too, with their state: signed out, revoked, expired, idle). They are kept "
        "in the store, so every console process shares them.",
    )
    flag(sessions, "--all", "also sign-ins that ended (kept 30 days)")
    format_options(sessions, csv_rows="one row per sign-in")
    revoke = command(
        actions,
        "revoke",
        "consumer.commands.web_sessions:run_revoke",
        help="sign an auditor out of the console now, in every console process",
        description="End a console sign-in (ID, or a unique prefix of it, from 'web "
        "sessions') or every sign-in of --user NAME. The auditor is signed out at their "
        "next request; the revocation is written to the access log. Exits 0 when done, 1 "
        "when nothing was in use, 3 for an unknown or ambiguous id.",
    )
    revoke.add_argument("id", nargs="?", metavar="ID", type=_signin_id, help="sign-in id prefix")
    revoke.add_argument("--user", metavar="NAME", type=_auditor_name, help="all of their sign-ins")
    why_and_who(revoke, "why (recorded in the access log)")


def lag(commands: Any) -> None:
    lag = command(
        commands,
        "lag",
        "consumer.commands.lag:run",
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
    _gateway_metrics(
        lag,
        "a gateway's /metrics, for end-to-end lag (repeatable; default: this settings "
        "file's gateway.metrics_port, if set)",
    )
    flag(
        lag,
        "--watch",
        f"refresh every 2 s until Ctrl-C, judging over the last {WATCH_WINDOW_S:.0f} s",
    )


def lag_exporter(commands: Any) -> None:
    exporter = command(
        commands,
        "lag-exporter",
        "consumer.commands.lag_exporter:run",
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
    _gateway_metrics(
        exporter, "a gateway's /metrics, for sshtrail_end_to_end_lag_seconds (repeatable)"
    )


def reprocess(commands: Any) -> None:
    again = command(
        commands,
        "reprocess",
        "consumer.commands.reprocess:run",
        help="re-consume an offset or time range into the store or the index",
        description="Read a range of the sessions topic with a consumer that commits no group "
        "offsets and write it through the group's idempotent writer: what is already there "
        "is counted as a duplicate, what is missing is restored. The range is [from, to); "
        "without --to-*, up to the log end at the start.",
    )
    again.add_argument("--group", choices=("store", "index"), required=True)
    _partitions(again)
    start = again.add_mutually_exclusive_group(required=True)
    start.add_argument("--from-offset", type=int, metavar="N")
    start.add_argument("--from-time", type=moment, metavar="T", help="2h ago, or ISO time")
    end = again.add_mutually_exclusive_group()
    end.add_argument("--to-offset", type=int, metavar="M")
    end.add_argument("--to-time", type=moment, metavar="T")
    flag(again, "--dry-run", "print what would be read from each partition, read and write nothing")


def completeness(commands: Any) -> None:
    whole = command(
        commands,
        "completeness",
        "consumer.commands.completeness:run",
        help="prove the store lost nothing: every offset committed past is stored or dead-lettered",
        description="For each partition of the sessions topic, read every message below the "
        "store group's committed offset and check it is stored, in the dead-letter topic, or "
        "of a quarantined session. Reports missing offsets, and as DATA-LOSS offsets the "
        "broker deleted (retention) before the group read them. Exits 1 if anything is "
        "missing or lost. Reads the topic: bound it with --partition or --since.",
    )
    whole.add_argument("--group", metavar="G", help="default: consumer.store_group")
    _partitions(whole)
    since(whole, "only messages published at or after T (2h ago, or ISO time)", metavar="T")
    flag(whole, "--json")


def watch(commands: Any) -> None:
    watch = command(
        commands,
        "watch",
        "consumer.commands.watch:run",
        help="follow a session live from Kafka as it happens",
        description="Render a session's output live, read from its partition from its first "
        "chunk on, until it ends or Ctrl-C. Like replay, what the session drew reaches your "
        "terminal, but nothing that would make it answer, set its clipboard or title, or "
        "leave it in another mode (--raw: the bytes exactly as recorded).",
    )
    watch.add_argument("session", metavar="SID", help="session id, or a unique prefix if stored")
    flag(watch, "--raw", "write the output bytes exactly as recorded, without the terminal filter")
    flag(
        watch,
        "--moderate",
        "be present as a moderator while watching (a moderated session, "
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


def _partitions(parser: argparse.ArgumentParser) -> None:
    """``--partition`` of the commands that read the topic."""
    parser.add_argument(
        "--partition",
        type=ranged(int, 0, None, "a partition number (0 or more)"),
        action="append",
        metavar="P",
        help="only this partition (repeatable; default all)",
    )


def _gateway_metrics(parser: argparse.ArgumentParser, help: str) -> None:
    """``--gateway-metrics URL``: where the end-to-end lag's first half is read."""
    parser.add_argument(
        "--gateway-metrics", action="append", type=http_url, metavar="URL", help=help
    )


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
