"""``sshtrail completeness``: proof that the store lost nothing the group committed past."""

from __future__ import annotations

import argparse

import msgspec

from consumer import completeness
from consumer.service import open_database
from sshtrail.errors import InvalidError
from sshtrail.kafka.adapters import topic_reader
from sshtrail.kafka.admin import kafka_admin
from sshtrail.settings import Settings


def run(args: argparse.Namespace, settings: Settings) -> int:
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
            f"{sum(r.deleted for r in reports)} deleted by retention or by hand, "
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
            f"dead-lettered, {r.quarantined} quarantined, {r.deleted} deleted"
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
    for found in r.accounted:
        line += f"; {found.describe()}"
    if r.expired is not None:
        line += f" (offsets below {r.expired[1]} expired after being read: not checkable)"
    return line
