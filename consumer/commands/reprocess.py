"""``sshtrail reprocess``: an offset or time range of the topic consumed again into the store
or the index."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from consumer.indexer import IndexWriter
from consumer.reprocess import Bound, Reprocessed, plan, reprocess
from consumer.service import interrupted_after, open_database, open_index
from consumer.store import StoreWriter
from sshtrail.errors import InvalidError
from sshtrail.kafka.adapters import topic_reader
from sshtrail.provenance import provenance
from sshtrail.settings import Settings


def run(args: argparse.Namespace, settings: Settings) -> int:
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
