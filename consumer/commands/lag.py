"""``sshtrail lag``: consumer lag and status per group and partition, as the broker reports it."""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import time
from typing import Any

import msgspec

from consumer.commands.parsers import WATCH_WINDOW_S
from consumer.lag import (
    LagReader,
    PartitionLag,
    end_to_end_s,
    gateway_backlog_s,
    gateway_urls,
    group_totals,
)
from consumer.lagstatus import Status, worst
from sshtrail.commandkit.output import chosen_format, print_csv, print_table
from sshtrail.commandkit.signals import stop_on_signals
from sshtrail.errors import BrokerError
from sshtrail.settings import Settings
from sshtrail.textsafe import local_time, visible

COLUMNS = (
    "GROUP",
    "TOPIC",
    "PARTITION",
    "STATUS",
    "CURRENT-OFFSET",
    "LOG-END-OFFSET",
    "LAG",
    "TIME-LAG",
    "CONSUMER-ID",
    "HOST",
    "CLIENT-ID",
)


def run(args: argparse.Namespace, settings: Settings) -> int:
    groups = args.group or settings.consumer_groups
    window = WATCH_WINDOW_S if args.watch else args.window
    gateways = gateway_urls(settings, args.gateway_metrics)
    try:
        reader = LagReader(settings, window_s=window)
    except BrokerError as exc:
        return _lag_error(exc)
    severity = 0
    try:
        with stop_on_signals() as stop:
            started = time.monotonic()
            while True:
                # Readings before the window is over are only judged by: no message ages.
                judging = not args.watch and time.monotonic() - started < args.window
                try:
                    rows = [row for group in groups for row in reader.read(group, not judging)]
                except BrokerError as exc:
                    return _lag_error(exc)
                if judging:
                    if stop.wait(1.0):
                        break
                    continue  # more readings to judge by before printing
                severity = max((Status(r.status).severity for r in rows), default=0)
                if args.watch and sys.stdout.isatty():
                    print("\x1b[H\x1b[2J", end="")
                backlog = gateway_backlog_s(gateways) if gateways else None
                shape = chosen_format(args)
                if shape == "csv":
                    print_csv(_lag_csv(rows))
                elif shape == "json":
                    document = _lag_document(rows, groups, backlog)
                    print(msgspec.json.encode(document).decode(), flush=True)
                else:
                    if args.watch:
                        print(local_time(dt.datetime.now(dt.UTC)), flush=True)
                    _print_lag(rows, groups, backlog)
                if not args.watch or stop.wait(2.0):
                    break
    finally:
        reader.close()
    return severity


def _lag_csv(rows: list[PartitionLag]) -> list[tuple[str, ...]]:
    names = [field for field in PartitionLag.__dataclass_fields__]
    return [tuple(names)] + [
        tuple("" if (v := getattr(r, name)) is None else str(v) for name in names) for r in rows
    ]


def _lag_error(exc: BrokerError) -> int:
    print(f"sshtrail: error: {exc}", file=sys.stderr)
    return 2


def _lag_document(
    rows: list[PartitionLag], groups: list[str], backlog: float | None
) -> dict[str, Any]:
    documents, statuses = [], []
    for group in groups:
        mine = [r for r in rows if r.group == group]
        status, lag, oldest = group_totals(mine)
        statuses.append(status)
        documents.append(
            {
                "group": group,
                "status": status.value,
                "lag": lag,
                "time_lag_s": oldest,
                "end_to_end_s": end_to_end_s(backlog, oldest),
                "partitions": mine,
            }
        )
    return {"status": worst(statuses).value, "gateway_backlog_s": backlog, "groups": documents}


def _print_lag(rows: list[PartitionLag], groups: list[str], backlog: float | None) -> None:
    table: list[tuple[str, ...]] = [COLUMNS]
    for r in rows:
        current = "-" if r.current_offset is None else str(r.current_offset)
        table.append(
            (
                r.group,
                r.topic,
                str(r.partition),
                r.status,
                current,
                str(r.log_end_offset),
                str(r.lag),
                _age(r.time_lag_s),
                visible(r.consumer_id or "-"),
                visible(r.host or "-"),
                visible(r.client_id or "-"),
            )
        )
    print_table(table)
    for group in groups:
        mine = [r for r in rows if r.group == group]
        status, lag, oldest = group_totals(mine)
        reasons = sorted({f"{r.partition}: {r.reason}" for r in mine if r.status != "OK"})
        total = end_to_end_s(backlog, oldest)
        through = (
            f", end to end {_age(total)} (gateway backlog {_age(backlog)})"
            if backlog is not None
            else ""
        )
        print(
            f"GROUP {group}: {status.value}, lag {lag} messages, oldest unconsumed "
            f"{_age(oldest)}{through}" + "".join(f"\n  partition {why}" for why in reasons),
            flush=True,
        )


def _age(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds:.1f}s"
