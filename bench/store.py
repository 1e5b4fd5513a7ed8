"""The store group's write rate into SQLite and PostgreSQL, next to the raw consume rate.

One run: start the embedded broker, publish ``--sessions`` x ``--chunks``
chunks of ``--payload`` bytes, then read them all three ways from the same
topic, each with a fresh consumer group:

* baseline — a bare confluent-kafka consumer with the runner's settings
  that only counts messages (what reading costs, with no decode and no database);
* SQLite — a ``GroupRunner`` + ``StoreWriter`` into a fresh SQLite file;
* PostgreSQL — the same into a fresh database on the machine's server.

Goal from the store issue: ≥ 50 % of raw consume on PostgreSQL with 1 KiB
chunks, and ≥ 20,000 chunks/s.

    python -m bench.store [--sessions 2000] [--chunks 50] [--payload 1024] [--batch 2000]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import threading
import time
import uuid
from dataclasses import dataclass

import msgspec
from confluent_kafka import Consumer

from bench.cpu import cpu_seconds, cpu_seconds_of, wait_until_idle
from bench.scratch import scratch
from consumer.metrics import ConsumerMetrics
from consumer.service import build_runner, member_engine
from consumer.store import StoreWriter
from consumer.writer import Writer
from sshtrail import migrate
from sshtrail.broker import EmbeddedBroker, free_port
from sshtrail.kafka.admin import ensure_topics
from sshtrail.settings import ConsumerSettings, KafkaSettings, Settings
from tests.support import postgres
from tests.support.recordings import keyed, produce, recording


def settings_for(servers: str, topic: str, batch: int) -> Settings:
    return Settings(
        instance="bench",
        kafka=KafkaSettings(bootstrap_servers=servers, topic=topic, dlq_topic=topic + ".dlq"),
        consumer=ConsumerSettings(
            assignment_strategy="roundrobin", batch_size=batch, batch_wait_ms=100
        ),
    )


def raw_consume(settings: Settings, total: int) -> float:
    """Seconds for a bare consumer to read ``total`` messages (first message to last)."""
    consumer = Consumer(
        {
            "bootstrap.servers": settings.bootstrap_servers,
            "group.id": f"bench-raw-{uuid.uuid4().hex[:6]}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "partition.assignment.strategy": "roundrobin",
            "receive.message.max.bytes": 1 << 30,
            "max.partition.fetch.bytes": 4 << 20,
        }
    )
    consumer.subscribe([settings.kafka.topic])
    seen, started = 0, None
    while seen < total:
        messages = consumer.consume(settings.consumer.batch_size, 1.0)
        if messages and started is None:
            started = time.perf_counter()
        seen += sum(1 for m in messages if m.error() is None)
    elapsed = time.perf_counter() - (started or 0)
    consumer.close()
    return elapsed


@dataclass
class Phase:
    """One member's run: its seconds, and CPU seconds spent meanwhile by each process."""

    seconds: float
    member: float  # this process: the member's threads (and the bench's light polling)
    database: float  # PostgreSQL's server processes (0 for SQLite, which is in the member)
    broker: float


def store(settings: Settings, url: str, total: int, broker: int | None) -> Phase:
    """One store member writing ``total`` chunks (first batch in to last out)."""
    migrate.upgrade(url)
    engine = member_engine(url)  # exactly as `sshtrail store` makes it
    phase = member_seconds(settings, StoreWriter(engine, dt.timedelta(hours=1)), total, broker)
    engine.dispose()
    return phase


def member_seconds(
    settings: Settings, writer: Writer, total: int, broker: int | None = None
) -> Phase:
    """One group member with ``writer`` taking ``total`` chunks, from the first batch
    received (the group joined) to the last one committed: seconds, and CPU meanwhile."""

    def cpu() -> tuple[float, float, float]:
        return time.process_time(), cpu_seconds_of("postgres"), cpu_seconds(broker)

    group = f"bench-{uuid.uuid4().hex[:8]}"
    metrics = ConsumerMetrics(group)
    runner = build_runner(settings, group, writer, metrics)
    thread = threading.Thread(target=runner.run)
    thread.start()
    while metrics.value("sshtrail_messages_consumed_total") == 0:
        time.sleep(0.002)
    started, before = time.perf_counter(), cpu()
    while metrics.value("sshtrail_chunks_written_total") < total:
        time.sleep(0.002)
    elapsed, after = time.perf_counter() - started, cpu()
    runner.stop()
    thread.join()
    return Phase(elapsed, *(b - a for a, b in zip(before, after, strict=True)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=2000)
    parser.add_argument("--chunks", type=int, default=50)
    parser.add_argument("--payload", type=int, default=1024)
    parser.add_argument("--batch", type=int, default=2000)
    parser.add_argument("--skip-postgres", action="store_true")
    parser.add_argument(
        "--interleave",
        action="store_true",
        help="the sessions' chunks taken in turns, as live sessions publish them (a batch "
        "then holds one chunk of many sessions: one signature check per chunk); by "
        "default each session's chunks follow each other, as a group catching up reads "
        "them (one check per run of a session's chunks)",
    )
    args = parser.parse_args()

    workdir = scratch("bench-store-")
    with (workdir / "broker.log").open("ab") as log:
        broker = EmbeddedBroker("127.0.0.1", free_port(), workdir / "broker", log)
        broker.start()
        try:
            settings = settings_for(broker.bootstrap_servers, "bench.sessions", args.batch)
            settings = msgspec.structs.replace(
                settings, kafka=msgspec.structs.replace(settings.kafka, partitions=6)
            )
            ensure_topics(settings)
            sessions = [
                list(keyed(*recording(args.chunks, args.payload))) for _ in range(args.sessions)
            ]
            if args.interleave:
                messages = [m for turn in zip(*sessions, strict=True) for m in turn]
            else:
                messages = [m for chunks in sessions for m in chunks]
            total = produce(broker.bootstrap_servers, settings.kafka.topic, messages)
            events = total + args.sessions * 2  # one event a chunk, start/exec and exit/end
            print(
                f"{total:,} chunks of {args.payload} B payload in {args.sessions:,} sessions"
                f"{' (interleaved)' if args.interleave else ''}, batches of {args.batch}"
            )
            waited = wait_until_idle(broker.pid)
            print(f"(waited {waited:.1f} s for the broker to finish writing its log)")
            raw = raw_consume(settings, total)
            print(f"baseline raw consume      {total / raw:>10,.0f} msgs/s")
            targets = [("SQLite", f"sqlite:///{workdir / 'store.db'}")]
            if not args.skip_postgres:
                targets.append(("PostgreSQL", postgres.create_database()))
            for name, url in targets:
                wait_until_idle(broker.pid)
                run = store(settings, url, total, broker.pid)
                print(
                    f"store into {name:<12}  {total / run.seconds:>10,.0f} chunks/s  "
                    f"{events / run.seconds:>10,.0f} events/s  ratio to raw consume "
                    f"{raw / run.seconds:.2f}"
                )
                per = 1e6 / total  # CPU µs per chunk
                print(
                    f"    CPU per chunk: member {run.member * per:.0f} µs, database "
                    f"{run.database * per:.0f} µs, broker {run.broker * per:.0f} µs; "
                    f"machine busy {(run.member + run.database + run.broker) / run.seconds:.2f}"
                    f" of {os.cpu_count()} cores"
                )
                if url.startswith("postgres"):
                    postgres.drop_database(url)
        finally:
            broker.stop()


if __name__ == "__main__":
    main()
