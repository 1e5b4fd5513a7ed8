"""``sshtrail store`` (and later ``index``): consumer-group members, registered via entry point."""

from __future__ import annotations

import argparse
import re
from typing import Any

import msgspec
from sqlalchemy import Engine

from consumer.indexer import IndexWriter
from consumer.reprocess import drop_index, rebuild_index
from consumer.service import Stopped, incomplete_after, open_database, open_index, run_member
from consumer.store import StoreWriter
from sshtrail.cli.arguments import port
from sshtrail.settings import Settings


def register(commands: Any) -> None:
    store = commands.add_parser(
        "store",
        help="run a member of the consumer group that persists sessions to the database",
        description="Read the sessions topic as a member of the store group and write every "
        "chunk and session row to the database (database.url). Run as many as the topic has "
        "partitions; they share the work. SIGTERM finishes the batch in hand and leaves.",
    )
    _member_options(store, "store_group")
    store.set_defaults(handler=run_store)

    index = commands.add_parser(
        "index",
        help="run a member of the consumer group that makes sessions searchable",
        description="Read the sessions topic as a member of the index group and index what "
        "each session showed: output lines and commands (resolved through a terminal "
        "emulator), exec commands and session metadata, into search.url (SQLite FTS5 by "
        "default, PostgreSQL pg_trgm). Independent of the store group.",
    )
    _member_options(index, "index_group")
    index.add_argument(
        "--rebuild",
        action="store_true",
        help="drop the search index and index every stored session again from "
        "the store's chunks, then exit (stop the index group first)",
    )
    index.set_defaults(handler=run_index)


def _member_options(parser: argparse.ArgumentParser, group_key: str) -> None:
    parser.add_argument(
        "--group", type=_group_name, help=f"consumer group id (default: consumer.{group_key})"
    )
    parser.add_argument(
        "--instance-id",
        type=_group_name,
        metavar="ID",
        help="static member id: a restarted member with the same id takes "
        "its partitions back at once (default: consumer.instance_id)",
    )
    parser.add_argument(
        "--metrics-port",
        type=port,
        metavar="PORT",
        help="serve Prometheus /metrics on this port (0: off; default: consumer.metrics_port)",
    )


def run_store(args: argparse.Namespace, settings: Settings) -> int:
    settings = _with_instance_id(settings, args.instance_id)
    try:
        engine = open_database(settings, wait=True)
    except Stopped as stopped:
        print(f"store: {stopped}", flush=True)
        return 0
    writer = StoreWriter(engine, incomplete_after(settings))
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


def _group_name(text: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9._-]{1,249}", text):
        raise argparse.ArgumentTypeError(f"{text!r} is not a valid id (letters, digits, . _ -)")
    return text
