"""``sshtrail store``: a member of the group that persists sessions to the database."""

from __future__ import annotations

import argparse

from sqlalchemy import Engine

from consumer.accesstrim import AccessTrim
from consumer.retentionwork import RetentionWork
from consumer.service import (
    Stopped,
    interrupted_after,
    open_database,
    run_member,
    with_instance_id,
)
from consumer.store import StoreWriter
from sshtrail import retention, tombstone
from sshtrail.settings import Settings


def run(args: argparse.Namespace, settings: Settings) -> int:
    settings = with_instance_id(settings, args.instance_id)
    try:
        engine = open_database(settings, wait=True)
    except Stopped as stopped:
        print(f"store: {stopped}", flush=True)
        return 0
    writer = StoreWriter(
        engine,
        interrupted_after(settings),
        evidence_max_bytes=settings.consumer.refused_chunks_max_mib << 20,
        retention=_retention(settings, engine),
    )
    group = args.group or settings.consumer.store_group
    try:
        return run_member(settings, group, writer, args.metrics_port, "store")
    finally:
        engine.dispose()


def _retention(settings: Settings, engine: Engine) -> RetentionWork:
    """The retention rules' deletions and the access log's trim (the deletion key is made
    only when either is set) and, set or not, the months ahead of a partitioned store."""
    rules = retention.rules(settings)
    keep = settings.retention.access_log_keep
    signer = tombstone.signing_key(settings) if rules or keep else None
    trim = AccessTrim(engine, keep, settings.retention.check_s, signer) if keep and signer else None
    return RetentionWork(engine, rules, settings.retention.check_s, signer, access_trim=trim)
