"""``sshtrail index``: a member of the group that makes sessions searchable, or (``--rebuild``)
the index made again from the store."""

from __future__ import annotations

import argparse

from sqlalchemy import Engine

from consumer.indexer import IndexWriter
from consumer.indexpurge import IndexPurge
from consumer.reprocess import drop_index, rebuild_index
from consumer.service import (
    Stopped,
    member_engine,
    open_database,
    open_index,
    run_member,
    with_instance_id,
)
from sshtrail.settings import Settings


def run(args: argparse.Namespace, settings: Settings) -> int:
    settings = with_instance_id(settings, args.instance_id)
    try:
        engine = open_index(settings, wait=not args.rebuild)
    except Stopped as stopped:
        print(f"index: {stopped}", flush=True)
        return 0
    if args.rebuild:
        return _rebuild(settings, engine)
    group = args.group or settings.consumer.index_group
    # The store's tombstones say what to remove (by a rule or by hand); its engine is
    # not checked here: a store away or behind only delays the purge.
    store = member_engine(settings.database_url)
    writer = IndexWriter(engine, purge=IndexPurge(store, settings.retention.check_s))
    try:
        return run_member(settings, group, writer, args.metrics_port, "index")
    finally:
        engine.dispose()
        store.dispose()


def _rebuild(settings: Settings, index: Engine) -> int:
    store = open_database(settings)
    try:
        drop_index(index)
        counts = rebuild_index(store, IndexWriter(index))
    finally:
        store.dispose()
        index.dispose()
    print(f"index rebuilt from the store: {counts.read} chunks read, {counts.written} indexed")
    return 0
