"""``sshtrail topics``: create the sessions and dead-letter topics, say what they are."""

from __future__ import annotations

import argparse
import sys
import time

from sshtrail.errors import BrokerError
from sshtrail.kafka.admin import ensure_topics, kafka_admin
from sshtrail.settings import Settings


def run(args: argparse.Namespace, settings: Settings) -> int:
    if not 0 <= args.wait <= 3600:
        print(
            f"sshtrail: error: --wait {args.wait:g} is not between 0 and 3600 seconds",
            file=sys.stderr,
        )
        return 2
    deadline = time.monotonic() + args.wait
    while True:
        try:
            created = ensure_topics(settings, timeout=10.0)
            break
        except BrokerError as exc:
            if time.monotonic() >= deadline:
                raise
            print(f"waiting for Kafka: {exc}", file=sys.stderr, flush=True)
            time.sleep(2.0)
    for name, partitions, replicas in describe(settings):
        state = "created" if name in created else "exists"
        print(f"{name}  {partitions} partitions, replication factor {replicas} ({state})")
        wanted = settings.kafka.partitions
        if name == settings.kafka.topic and partitions != wanted:
            print(
                f"  note: kafka.partitions is {wanted}; the topic keeps {partitions} (a "
                "change moves sessions to other partitions: docs/operations.md)"
            )
    return 0


def describe(settings: Settings) -> list[tuple[str, int, int]]:
    """Name, partition count and smallest replica count of the three topics."""
    admin = kafka_admin(settings)
    rows = []
    for name in (settings.kafka.topic, settings.kafka.dlq_topic, settings.control.topic):
        topic = admin.topic(name)
        rows.append((name, topic.partitions, topic.replicas))
    return rows
