"""``sshtrail store`` (and later ``index``): consumer-group members, registered via entry point."""

from __future__ import annotations

import argparse

import msgspec
from sqlalchemy import Engine

from consumer.indexer import IndexWriter
from consumer.reprocess import drop_index, rebuild_index
from consumer.service import Stopped, interrupted_after, open_database, open_index, run_member
from consumer.store import StoreWriter
from sshtrail.settings import Settings


def run_store(args: argparse.Namespace, settings: Settings) -> int:
    settings = _with_instance_id(settings, args.instance_id)
    try:
        engine = open_database(settings, wait=True)
    except Stopped as stopped:
        print(f"store: {stopped}", flush=True)
        return 0
    writer = StoreWriter(
        engine,
        interrupted_after(settings),
        evidence_max_bytes=settings.consumer.refused_chunks_max_mib << 20,
    )
    group = args.group or settings.consumer.store_group
    try:
        return run_member(settings, group, writer, args.metrics_port, "store")
    finally:
        engine.dispose()


def run_index(args: argparse.Namespace, settings: Settings) -> int:
    settings = _with_instance_id(settings, args.instance_id)
    try:
        engine = open_index(settings, wait=not args.rebuild)
    except Stopped as stopped:
        print(f"index: {stopped}", flush=True)
        return 0
    if args.rebuild:
        return _rebuild(settings, engine)
    group = args.group or settings.consumer.index_group
    try:
        return run_member(settings, group, IndexWriter(engine), args.metrics_port, "index")
    finally:
        engine.dispose()


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


def _with_instance_id(settings: Settings, instance_id: str | None) -> Settings:
    if not instance_id:
        return settings
    consumer = msgspec.structs.replace(settings.consumer, instance_id=instance_id)
    return msgspec.structs.replace(settings, consumer=consumer)
