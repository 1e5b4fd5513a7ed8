"""``sshtrail lag``, ``reprocess`` and ``watch``: the admins' view of the groups and the topic."""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import uuid
from typing import Any

import msgspec
from sqlalchemy.exc import OperationalError, ProgrammingError

from consumer.indexer import IndexWriter
from consumer.lag import LagReader, PartitionLag
from consumer.reprocess import Bound, reprocess
from consumer.service import open_database, open_index
from consumer.store import StoreWriter
from consumer.watch import follow
from sshtrail import queries
from sshtrail.cli.output import print_table
from sshtrail.cli.signals import stop_on_signals
from sshtrail.cli.timespec import moment
from sshtrail.db import make_engine
from sshtrail.errors import InvalidError
from sshtrail.events import End, Output, Start
from sshtrail.settings import Settings
from sshtrail.textsafe import visible

COLUMNS = (
    "GROUP",
    "TOPIC",
    "PARTITION",
    "CURRENT-OFFSET",
    "LOG-END-OFFSET",
    "LAG",
    "TIME-LAG",
    "CONSUMER-ID",
    "HOST",
    "CLIENT-ID",
)


def register(commands: Any) -> None:
    lag = commands.add_parser(
        "lag",
        help="consumer lag per group and partition, as the broker reports it",
        description="For each group (default: the store and index groups) and partition: "
        "committed offset, log-end offset, lag, age of the oldest unconsumed message, and "
        "the member that owns it; then a total per group.",
    )
    lag.add_argument("--group", action="append", metavar="G", help="only this group (repeatable)")
    lag.add_argument("--json", action="store_true")
    lag.add_argument("--watch", action="store_true", help="refresh every 2 s until Ctrl-C")
    lag.set_defaults(handler=run_lag)

    again = commands.add_parser(
        "reprocess",
        help="re-consume an offset or time range into the store or the index",
        description="Read a range of the sessions topic with a consumer that commits no group "
        "offsets and write it through the group's idempotent writer: what is already there "
        "is counted as a duplicate, what is missing is restored. The range is [from, to); "
        "without --to-*, up to the log end at the start.",
    )
    again.add_argument("--group", choices=("store", "index"), required=True)
    again.add_argument(
        "--partition",
        type=int,
        action="append",
        metavar="P",
        help="only this partition (repeatable; default all)",
    )
    start = again.add_mutually_exclusive_group(required=True)
    start.add_argument("--from-offset", type=int, metavar="N")
    start.add_argument("--from-time", type=moment, metavar="T", help="2h ago, or ISO time")
    end = again.add_mutually_exclusive_group()
    end.add_argument("--to-offset", type=int, metavar="M")
    end.add_argument("--to-time", type=moment, metavar="T")
    again.set_defaults(handler=run_reprocess)

    watch = commands.add_parser(
        "watch",
        help="follow a session live from Kafka as it happens",
        description="Render a session's output live, read from its partition from its first "
        "chunk on, until it ends or Ctrl-C. Like replay, this writes the session's bytes "
        "to the terminal as they were.",
    )
    watch.add_argument("session", metavar="SID", help="session id, or a unique prefix if stored")
    watch.set_defaults(handler=run_watch)


def run_lag(args: argparse.Namespace, settings: Settings) -> int:
    groups = args.group or [settings.consumer.store_group, settings.consumer.index_group]
    reader = LagReader(settings)
    try:
        with stop_on_signals() as stop:
            while True:
                rows = [row for group in groups for row in reader.read(group)]
                if args.watch and sys.stdout.isatty():
                    print("\x1b[H\x1b[2J", end="")
                if args.json:
                    print(msgspec.json.encode(rows).decode(), flush=True)
                else:
                    _print_lag(rows, groups)
                if not args.watch or stop.wait(2.0):
                    break
    finally:
        reader.close()
    return 0


def _print_lag(rows: list[PartitionLag], groups: list[str]) -> None:
    table: list[tuple[str, ...]] = [COLUMNS]
    for r in rows:
        current = "-" if r.current_offset is None else str(r.current_offset)
        table.append(
            (
                r.group,
                r.topic,
                str(r.partition),
                current,
                str(r.log_end_offset),
                str(r.lag),
                f"{r.time_lag_s:.1f}s",
                visible(r.consumer_id or "-"),
                visible(r.host or "-"),
                visible(r.client_id or "-"),
            )
        )
    print_table(table)
    for group in groups:
        mine = [r for r in rows if r.group == group]
        oldest = max((r.time_lag_s for r in mine), default=0.0)
        print(
            f"TOTAL {group}: lag {sum(r.lag for r in mine)} messages, oldest unconsumed "
            f"{oldest:.1f}s",
            flush=True,
        )


def run_reprocess(args: argparse.Namespace, settings: Settings) -> int:
    if args.from_offset is not None and args.from_offset < 0:
        raise InvalidError("--from-offset must be 0 or more")
    if args.group == "store":
        engine = open_database(settings)
        incomplete = dt.timedelta(seconds=settings.incomplete_after_s)
        writer: StoreWriter | IndexWriter = StoreWriter(engine, incomplete)
    else:
        engine = open_index(settings)
        writer = IndexWriter(engine)
    try:
        done = reprocess(
            settings,
            writer,
            partitions=args.partition,
            start=Bound(args.from_offset, args.from_time),
            end=None
            if args.to_offset is None and args.to_time is None
            else Bound(args.to_offset, args.to_time),
        )
    finally:
        engine.dispose()
    for partition, (first, end) in sorted(done.ranges.items()):
        if end > first:
            print(
                f"partition {partition}: offsets {first}..{end - 1} "
                f"({done.read[partition]} messages)"
            )
        else:
            print(f"partition {partition}: nothing from offset {first}")
    c = done.counts
    print(
        f"{args.group}: {c.read} read, {c.written} written, {c.duplicates} already there, "
        f"{c.invalid} not chunks (see the dead-letter topic)"
    )
    return 0


def run_watch(args: argparse.Namespace, settings: Settings) -> int:
    session_id = _session_id(settings, args.session)
    out = sys.stdout.buffer
    print(f"watching {session_id}; Ctrl-C stops", file=sys.stderr, flush=True)
    with stop_on_signals() as stop:
        for event in follow(settings, session_id, lambda: stop.received):
            if isinstance(event, Start):
                print(
                    f"{visible(event.operator)}@{visible(event.target)} from "
                    f"{visible(event.client)}",
                    file=sys.stderr,
                    flush=True,
                )
            elif isinstance(event, Output):
                out.write(event.data)
                out.flush()
            elif isinstance(event, End):
                out.write(b"\x1b[0m\r\n")
                out.flush()
                print(f"session ended: {visible(event.reason)}", file=sys.stderr)
    return 0


def _session_id(settings: Settings, text: str) -> uuid.UUID:
    """A full id as given, or a prefix the store knows."""
    try:
        return uuid.UUID(text)
    except ValueError:
        pass
    engine = make_engine(settings.database_url)
    try:
        with engine.connect() as conn:
            return queries.resolve(conn, text)
    except (OperationalError, ProgrammingError) as exc:
        raise InvalidError(
            f"{text!r}: give the full session id (the store cannot be read: "
            f"{str(exc.orig).strip()})"
        ) from None
    finally:
        engine.dispose()
