"""Consumer-group members as real ``sshtrail`` processes, and what the broker says of them."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from sqlalchemy import Engine, func, select

from consumer.store import CHUNKS
from sshtrail.wire import decode_chunk
from tests.support.cli import Running
from tests.support.gateway import toml_value
from tests.support.waiting import wait_for

__all__ = ["wait_for"]  # re-exported: the tests of the groups take it from here


def create_topics(servers: str, *names: str, partitions: int = 3) -> None:
    admin = AdminClient({"bootstrap.servers": servers})
    for future in admin.create_topics([NewTopic(n, partitions, 1) for n in names]).values():
        future.result(15)


#: The consumers' session.timeout.ms in the tests' settings: a killed member is
#: dropped after this long (6 s, the least the brokers allow).
SESSION_TIMEOUT_MS = 6_000


def write_config(
    path: Path,
    servers: str,
    topic: str,
    database_url: str,
    search_url: str | None = None,
    **consumer: object,
) -> Path:
    """Settings for consumers of ``topic`` (DLQ ``<topic>.dlq``, groups ``<topic>-store``
    and ``<topic>-index``) writing to ``database_url`` (and ``search_url``)."""
    # Short timeouts: a killed member is dropped after session_timeout_ms, and
    # a rebalance may wait max_poll_interval_ms for members to rejoin. Groups of
    # their own, so tests never share a member. The assignment strategy is the
    # production default for the broker (cooperative-sticky on Kafka).
    options = {
        "store_group": f"{topic}-store",
        "index_group": f"{topic}-index",
        "batch_wait_ms": 50,
        "max_poll_interval_ms": 15_000,
        "session_timeout_ms": SESSION_TIMEOUT_MS,
        "retry_initial_ms": 100,
        "retry_max_ms": 1000,
        **consumer,
    }
    lines = [
        f"state_dir = {toml_value(str(path.parent / 'state'))}",
        f'instance = "it-{uuid.uuid4().hex[:6]}"',
        "[kafka]",
        f"bootstrap_servers = {toml_value(servers)}",
        f"topic = {toml_value(topic)}",
        f"dlq_topic = {toml_value(topic + '.dlq')}",
        "[database]",
        f"url = {toml_value(database_url)}",
        "[consumer]",
    ]
    lines += [f"{key} = {toml_value(value)}" for key, value in options.items()]
    if search_url is not None:
        lines += ["[search]", f"url = {toml_value(search_url)}"]
    path.write_text("\n".join(lines) + "\n")
    return path


def start_member(
    config: Path, command: str = "store", *options: str, memory_limit: int | None = None
) -> Running:
    member = Running(
        "--config", str(config), command, *options, cwd=config.parent, memory_limit=memory_limit
    )
    member.expect(f"{command}: group")
    return member


def chunk_count(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(CHUNKS)).scalar_one())


def group_lag(servers: str, group: str, topic: str) -> dict[int, int]:
    """Log-end offset minus the group's committed offset, per partition (the broker's view)."""
    return {
        p: end - max(committed, 0)
        for p, (committed, end) in _offsets(servers, group, topic).items()
    }


def committed_offsets(servers: str, group: str, topic: str) -> dict[int, int]:
    """The group's committed offset per partition (-1001 where it has none)."""
    return {p: committed for p, (committed, _end) in _offsets(servers, group, topic).items()}


def _offsets(servers: str, group: str, topic: str) -> dict[int, tuple[int, int]]:
    admin = AdminClient({"bootstrap.servers": servers})
    partitions = list(admin.list_topics(topic, timeout=10).topics[topic].partitions)
    probe = Consumer({"bootstrap.servers": servers, "group.id": group, "enable.auto.commit": False})
    try:
        committed = probe.committed([TopicPartition(topic, p) for p in partitions], timeout=10)
        found = {}
        for tp in committed:
            _low, high = probe.get_watermark_offsets(tp, timeout=10)
            found[tp.partition] = (tp.offset, high)
        return found
    finally:
        probe.close()


def read_all(servers: str, topic: str, timeout: float = 20) -> list[tuple[int, int, object]]:
    """Every message of ``topic``: (partition, offset, message), read from the start."""
    admin = AdminClient({"bootstrap.servers": servers})
    partitions = admin.list_topics(topic, timeout=10).topics[topic].partitions
    reader = Consumer(
        {
            "bootstrap.servers": servers,
            "group.id": f"r-{uuid.uuid4()}",
            "enable.auto.commit": False,
            "receive.message.max.bytes": 1 << 30,
        }
    )
    ends = {}
    for p in partitions:
        _low, high = reader.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
        ends[p] = high
    reader.assign([TopicPartition(topic, p, 0) for p in partitions])
    found: list[tuple[int, int, object]] = []
    deadline = time.monotonic() + timeout
    while sum(ends.values()) > len(found) and time.monotonic() < deadline:
        for message in reader.consume(1000, 0.5):
            if message.error() is None:
                found.append((message.partition() or 0, message.offset() or 0, message))
    reader.close()
    return found


def stored_chunks(engine: Engine) -> dict[tuple[uuid.UUID, int], bytes]:
    with engine.connect() as conn:
        rows = conn.execute(select(CHUNKS.c.session_id, CHUNKS.c.seq, CHUNKS.c.data))
        return {(sid, seq): data for sid, seq, data in rows}


def assert_store_equals_topic(
    engine: Engine,
    servers: str,
    topic: str,
    *,
    sessions: set[uuid.UUID] | None = None,
) -> None:
    """Every message on the topic is stored once, byte for byte, and nothing else is
    (of ``sessions`` only, when given)."""
    on_topic: dict[tuple[uuid.UUID, int], bytes] = {}
    for _p, _o, message in read_all(servers, topic):
        chunk = decode_chunk(message.value())  # type: ignore[attr-defined]
        on_topic[chunk.session_id, chunk.seq] = chunk.raw
    stored = stored_chunks(engine)
    if sessions is not None:
        stored = {k: v for k, v in stored.items() if k[0] in sessions}
        on_topic = {k: v for k, v in on_topic.items() if k[0] in sessions}
    only_stored = sorted(set(stored) - set(on_topic))
    only_topic = sorted(set(on_topic) - set(stored))
    differ = sorted(k for k in set(stored) & set(on_topic) if stored[k] != on_topic[k])
    summary = (
        f"{len(stored)} stored, {len(on_topic)} on the topic; only stored: "
        f"{only_stored[:5]} ({len(only_stored)}), only on the topic: {only_topic[:5]} "
        f"({len(only_topic)}), different bytes: {differ[:5]} ({len(differ)})"
    )
    assert not only_stored, summary
    assert not only_topic, summary
    assert not differ, summary


def watermarks(servers: str, topic: str) -> dict[int, int]:
    """The log-end offset of each partition of ``topic``."""
    admin = AdminClient({"bootstrap.servers": servers})
    partitions = admin.list_topics(topic, timeout=10).topics[topic].partitions
    reader = Consumer({"bootstrap.servers": servers, "group.id": f"w-{uuid.uuid4()}"})
    try:
        return {
            p: int(reader.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1])
            for p in partitions
        }
    finally:
        reader.close()


def commit(servers: str, group: str, topic: str, offsets: dict[int, int]) -> None:
    """Commit ``offsets`` (partition: offset) for ``group``, as a member that then left."""
    consumer = Consumer({"bootstrap.servers": servers, "group.id": group})
    try:
        consumer.commit(
            offsets=[TopicPartition(topic, p, o) for p, o in offsets.items()], asynchronous=False
        )
    finally:
        consumer.close()
