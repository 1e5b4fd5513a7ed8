"""``sshtrail topics``: create the sessions, dead-letter and control topics, check them."""

from __future__ import annotations

import argparse
import sys
import time

from sshtrail.errors import BrokerError
from sshtrail.kafka.admin import Topics, settle_topics
from sshtrail.kafka.layout import TopicsRefused, summary
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
            topics = settle_topics(settings, timeout=10.0)
            break
        except BrokerError as exc:
            if time.monotonic() >= deadline:
                raise
            print(f"waiting for Kafka: {exc}", file=sys.stderr, flush=True)
            time.sleep(2.0)
    print_topics(topics)
    if topics.refusals:
        raise TopicsRefused(topics.refusals, settings.bootstrap_servers, "start nothing on them")
    return 0


def print_topics(topics: Topics) -> None:
    """Each topic as the brokers have it, then every safe difference as a warning."""
    for found in topics.found:
        state = "created" if found.name in topics.created else "exists"
        print(f"{found.name}  {summary(found)} ({state})")
    for warning in topics.warnings:
        print(f"warning: {warning}; used as it is")
