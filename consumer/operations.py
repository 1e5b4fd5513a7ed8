"""``sshtrail lag``, ``reprocess`` and ``watch``: the admins' view of the groups and the topic."""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import sys
import time
import uuid
from typing import Any

import msgspec
from sqlalchemy.exc import OperationalError, ProgrammingError

from consumer import completeness
from consumer.commands import WATCH_WINDOW_S
from consumer.indexer import IndexWriter
from consumer.lag import (
    LagReader,
    PartitionLag,
    end_to_end_s,
    gateway_backlog_s,
    gateway_urls,
    group_totals,
)
from consumer.lagexporter import run_exporter
from consumer.lagstatus import Status, worst
from consumer.reprocess import Bound, Reprocessed, plan, reprocess
from consumer.service import interrupted_after, open_database, open_index
from consumer.store import StoreWriter
from consumer.watch import follow
from sshtrail import queries
from sshtrail.commandkit.output import chosen_format, print_csv, print_table
from sshtrail.commandkit.signals import stop_on_signals
from sshtrail.db import existing_engine
from sshtrail.errors import BrokerError, InvalidError
from sshtrail.events import End, Output, Start
from sshtrail.kafka.adapters import topic_reader
from sshtrail.kafka.admin import kafka_admin
from sshtrail.provenance import provenance
from sshtrail.settings import Settings
from sshtrail.termfilter import TerminalFilter
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


def run_lag(args: argparse.Namespace, settings: Settings) -> int:
    groups = args.group or [settings.consumer.store_group, settings.consumer.index_group]
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


def run_lag_exporter(args: argparse.Namespace, settings: Settings) -> int:
    groups = args.group or [settings.consumer.store_group, settings.consumer.index_group]
    with stop_on_signals() as stop:
        run_exporter(
            settings,
            groups,
            gateways=gateway_urls(settings, args.gateway_metrics),
            listen=args.listen,
            port=args.port,
            interval_s=args.interval,
            stopped=stop.wait,
        )
    print(f"lag-exporter: stopped ({stop.name or 'exit'})", flush=True)
    return 0


def run_reprocess(args: argparse.Namespace, settings: Settings) -> int:
    _check_range(args)
    start = Bound(args.from_offset, args.from_time)
    end = (
        None
        if args.to_offset is None and args.to_time is None
        else Bound(args.to_offset, args.to_time)
    )
    errors: list[str] = []
    reader = topic_reader(settings, "reprocess", on_error=errors.append)
    try:
        ranges = plan(reader, settings.kafka.topic, partitions=args.partition, start=start, end=end)
        if args.dry_run:
            _print_ranges(ranges, verb="would read")
            print(f"{args.group}: nothing read or written (--dry-run)")
            return 0
        done = _reprocess_into(args.group, settings, reader, ranges)
    finally:
        reader.close()
    _print_ranges(done.ranges, verb="read", read=done.read)
    c = done.counts
    print(
        f"{args.group}: {c.read} read, {c.written} written, {c.duplicates} already there, "
        f"{c.invalid} not chunks (see the dead-letter topic)"
        + (f", {c.refused} refused: no trusted gateway signed them" if c.refused else "")
    )
    if errors:
        print(
            f"{len(errors)} errors from Kafka while reading (retried by the client); the "
            f"first: {errors[0]}",
            file=sys.stderr,
        )
    return 0


def _check_range(args: argparse.Namespace) -> None:
    for name in ("from_offset", "to_offset"):
        value = getattr(args, name)
        if value is not None and value < 0:
            raise InvalidError(f"--{name.replace('_', '-')} must be 0 or more, not {value}")
    offsets = (args.from_offset, args.to_offset)
    if None not in offsets and args.to_offset <= args.from_offset:
        raise InvalidError(
            f"--to-offset {args.to_offset} is not after --from-offset {args.from_offset}: "
            "the range is [from, to)"
        )
    times = (args.from_time, args.to_time)
    if None not in times and args.to_time <= args.from_time:
        raise InvalidError(
            f"--to-time {args.to_time.isoformat()} is not after --from-time "
            f"{args.from_time.isoformat()}"
        )


def _reprocess_into(
    group: str, settings: Settings, reader: Any, ranges: dict[int, tuple[int, int]]
) -> Reprocessed:
    if group == "store":
        engine = open_database(settings)
        writer: StoreWriter | IndexWriter = StoreWriter(
            engine,
            interrupted_after(settings),
            evidence_max_bytes=settings.consumer.refused_chunks_max_mib << 20,
        )
    else:
        engine = open_index(settings)
        writer = IndexWriter(engine)
    try:
        return reprocess(
            reader,
            settings.kafka.topic,
            writer,
            ranges=ranges,
            batch_size=settings.consumer.batch_size,
            provenance=provenance(settings, "reprocess"),
        )
    finally:
        engine.dispose()


def _print_ranges(
    ranges: dict[int, tuple[int, int]], verb: str, read: dict[int, int] | None = None
) -> None:
    for partition, (first, end) in sorted(ranges.items()):
        if end > first:
            count = read[partition] if read is not None else end - first
            print(f"partition {partition}: {verb} offsets {first}..{end - 1} ({count} messages)")
        else:
            print(f"partition {partition}: nothing from offset {first}")


def run_completeness(args: argparse.Namespace, settings: Settings) -> int:
    group = args.group or settings.consumer.store_group
    topic = settings.kafka.topic
    store = open_database(settings)
    reader = topic_reader(settings, "completeness")
    try:
        state = kafka_admin(settings).group(group, topic)
        if not state.exists:
            raise InvalidError(f"no consumer group {group!r} on {settings.bootstrap_servers}")
        reports = completeness.check(
            reader,
            store,
            topic=topic,
            dlq_topic=settings.kafka.dlq_topic,
            group=group,
            committed=state.committed,
            partitions=args.partition,
            since=args.since,
        )
    finally:
        reader.close()
        store.dispose()
    if args.json:
        print(msgspec.json.encode(reports).decode())
    else:
        for r in reports:
            print(_completeness_line(r))
        bad = [r for r in reports if not r.ok]
        print(
            f"{group}: {sum(r.stored for r in reports)} stored, "
            f"{sum(r.dead_lettered for r in reports)} dead-lettered, "
            f"{sum(r.quarantined for r in reports)} quarantined, "
            f"{sum(len(r.missing) for r in reports)} missing, "
            f"{sum(end - first for r in reports for first, end in r.lost)} lost"
            + (
                f"; NOT COMPLETE in partitions {[r.partition for r in bad]}"
                if bad
                else "; complete"
            )
        )
    return 0 if all(r.ok for r in reports) else 1


def _completeness_line(r: completeness.PartitionReport) -> str:
    first, end = r.checked
    line = f"partition {r.partition}: "
    if r.committed is None:
        line += "nothing committed yet"
    else:
        line += (
            f"offsets {first}..{end - 1} checked: {r.stored} stored, {r.dead_lettered} "
            f"dead-lettered, {r.quarantined} quarantined"
            if end > first
            else "nothing to check"
        )
    if r.missing:
        shown = ", ".join(map(str, r.missing[:10])) + (" ..." if len(r.missing) > 10 else "")
        line += f"; MISSING {len(r.missing)}: {shown}"
    for first, end in r.lost:
        line += f"; DATA-LOSS offsets {first}..{end - 1} were deleted by retention before "
        line += "the group read them (it recorded the loss as it moved past)"
    if r.data_loss is not None:
        line += f"; DATA-LOSS offsets {r.data_loss[0]}..{r.data_loss[1] - 1} were deleted "
        line += "by retention before the group read them"
    if r.expired is not None:
        line += f" (offsets below {r.expired[1]} expired after being read: not checkable)"
    return line


def run_watch(args: argparse.Namespace, settings: Settings) -> int:
    session_id = _session_id(settings, args.session)
    out = sys.stdout.buffer
    screen = None if args.raw else TerminalFilter()
    print(f"watching {session_id}; Ctrl-C stops", file=sys.stderr, flush=True)
    reader = topic_reader(settings, "watch")
    try:
        with stop_on_signals() as stop, contextlib.closing(reader):
            chunks_of = provenance(settings, "watch")
            events = follow(
                reader, settings.kafka.topic, session_id, lambda: stop.received, chunks_of
            )
            for event in events:
                if isinstance(event, Start):
                    print(
                        f"{visible(event.operator)}@{visible(event.target)} from "
                        f"{visible(event.client)}",
                        file=sys.stderr,
                        flush=True,
                    )
                elif isinstance(event, Output):
                    out.write(event.data if screen is None else screen.feed(event.data))
                    out.flush()
                elif isinstance(event, End):
                    print(f"\r\nsession ended: {visible(event.reason)}", file=sys.stderr)
    finally:
        if screen is not None:
            out.write(screen.finish())
        out.write(b"\r\n")
        out.flush()
    return 0


def _session_id(settings: Settings, text: str) -> uuid.UUID:
    """A full id as given, or a prefix the store knows."""
    try:
        return uuid.UUID(text)
    except ValueError:
        pass
    engine = existing_engine(settings.database_url, "store")
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
