"""The index under pathological output: its rate on each stream, and what one such stream
costs other sessions' search.

For each stream, one session publishes ``--mb`` MB of it live, as fast as the broker
takes it, in 64 KiB outputs as the gateway chunks them, on a 1000x500 terminal (the
largest the gateway grants). Meanwhile a probe publishes a small ordinary session every
second **on the same partition** -- the worst case: its chunks queue behind the flood's
-- and times how long until its marker is searchable. The baseline is the same probe
with no flood, measured in the same run. The index member is the real ``sshtrail index``
process on a SQLite index.

Streams (issue 23, finding 6): ``zeros+clears`` (zeros, then ``ESC[2J ESC[H`` over and
over: the case the issue names), ``longline`` (one line without a newline),
``screens`` (full 1000-column lines of text, screen after screen), ``overwrites``
(progress lines rewritten with carriage returns).

    python -m bench.index_fairness [--mb 300] [--streams zeros+clears,longline,...]
"""

from __future__ import annotations

import argparse
import random
import statistics
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from confluent_kafka import Producer
from sqlalchemy import Engine, select

from bench.scratch import scratch
from sshtrail import events as ev
from sshtrail import search
from sshtrail.broker import EmbeddedBroker, free_port
from sshtrail.chain import ChainWriter
from sshtrail.db import make_engine
from sshtrail.ids import uuid7
from sshtrail.kafka.config import partition_for
from tests.support.cli import Running
from tests.support.consumers import create_topics, write_config
from tests.support.recordings import SIGNER

PARTITIONS = 3
CHUNK = 64 << 10
COLS, ROWS = 1000, 500
PROBE_EVERY_S = 1.0
#: How long a probe may wait before the bench calls it lost.
PROBE_GIVE_UP_S = 600.0


def zeros_then_clears(total: int) -> Iterator[bytes]:
    half = total // 2
    for _ in range(half // CHUNK):
        yield bytes(CHUNK)
    clear = b"\x1b[2J\x1b[H"
    piece = clear * (CHUNK // len(clear))
    for _ in range((total - half) // len(piece)):
        yield piece


def long_line(total: int) -> Iterator[bytes]:
    rng = random.Random(1)
    letters = bytes(range(ord("a"), ord("z") + 1))
    piece = bytes(rng.choice(letters) for _ in range(CHUNK))
    for _ in range(total // CHUNK - 1):
        yield piece
    yield piece[:-2] + b"\r\n"


def screens(total: int) -> Iterator[bytes]:
    rng = random.Random(2)
    words = [b"error", b"connection", b"timeout", b"request", b"backend", b"10.0.3.7", b"ok"]
    line = b" ".join(rng.choice(words) for _ in range(160))[: COLS - 2] + b"\r\n"
    piece = line * (CHUNK // len(line))
    for _ in range(total // len(piece)):
        yield piece


def overwrites(total: int) -> Iterator[bytes]:
    piece = b"".join(b"copying file %06d ... %3d%%\r" % (n, n % 101) for n in range(2600))
    for _ in range(total // len(piece)):
        yield piece + b"done\r\n"


STREAMS: dict[str, Callable[[int], Iterator[bytes]]] = {
    "zeros+clears": zeros_then_clears,
    "longline": long_line,
    "screens": screens,
    "overwrites": overwrites,
}


class Session:
    """One session's chunks, encoded as the gateway encodes them."""

    def __init__(self, partition: int) -> None:
        # A session id that lands on ``partition``, as the probe must share the flood's.
        while True:
            self.id = uuid7()
            if partition_for(self.key, PARTITIONS) == partition:
                break
        self._writer = ChainWriter(self.id, SIGNER)
        self.t = 1

    @property
    def key(self) -> bytes:
        return str(self.id).encode()

    def start(self, operator: str) -> bytes:
        where = ("127.0.0.1:50000", "t1", "127.0.0.1", 22, "root", "bench")
        start = ev.Start(0, operator, *where, "xterm", COLS, ROWS, time.time_ns())
        return self._writer.encode([start, ev.Exec(1, "shell", b"")])

    def output(self, data: bytes) -> bytes:
        self.t += 1_000_000
        return self._writer.encode([ev.Output(self.t, data)])

    def end(self, chunks: int) -> bytes:
        self.t += 1
        close = ev.End(self.t, "exit status 0", 0, 0, chunks, self._writer.public_key)
        return self._writer.encode([ev.Exit(self.t, 0), close])


def publisher(servers: str) -> Producer:
    return Producer(
        {
            "bootstrap.servers": servers,
            "enable.idempotence": True,
            "linger.ms": 5,
            "partitioner": "murmur2_random",
            "compression.type": "lz4",
            "queue.buffering.max.kbytes": 65536,
        }
    )


def send(producer: Producer, topic: str, key: bytes, value: bytes) -> None:
    while True:
        try:
            producer.produce(topic, value, key)
            producer.poll(0)
            return
        except BufferError:
            producer.poll(0.05)


@dataclass
class Flood:
    """A pathological session published in a thread; when its last chunk was acked."""

    stream: Callable[[int], Iterator[bytes]]
    size: int
    topic: str
    servers: str
    session: Session = field(init=False)
    published_s: float = 0.0
    sent: int = 0

    def __post_init__(self) -> None:
        self.session = Session(0)

    def run(self) -> None:
        producer = publisher(self.servers)
        started = time.perf_counter()
        chunks = 1
        send(producer, self.topic, self.session.key, self.session.start("flood"))
        for data in self.stream(self.size):
            send(producer, self.topic, self.session.key, self.session.output(data))
            self.sent += len(data)
            chunks += 1
        send(producer, self.topic, self.session.key, self.session.end(chunks + 1))
        producer.flush(120)
        self.published_s = time.perf_counter() - started


@dataclass
class Stack:
    """Where the bench publishes and searches, and the index member between."""

    servers: str
    topic: str
    index: Engine
    member: Running


def probe(stack: Stack) -> float:
    """Publish an ordinary session on the flood's partition; seconds until it is found."""
    servers, topic, index, member = stack.servers, stack.topic, stack.index, stack.member
    mark = f"probe-{uuid.uuid4().hex[:10]}"
    session = Session(0)
    producer = publisher(servers)
    for value in (
        session.start("probe"),
        session.output(f"$ echo {mark}\r\n{mark}\r\n".encode()),
        session.end(3),
    ):
        send(producer, topic, session.key, value)
    producer.flush(30)
    published = time.perf_counter()
    query = search.Query(mark, kind="output", limit=1)
    while time.perf_counter() - published < PROBE_GIVE_UP_S:
        if member.process.poll() is not None:
            raise SystemExit(f"the index member died: {member.stderr[-3000:]}")
        with index.connect() as conn:
            if search.search(conn, query):
                return time.perf_counter() - published
        time.sleep(0.02)
    return float("inf")


def ended(index: Engine, session_id: uuid.UUID) -> bool:
    with index.connect() as conn:
        row = conn.execute(
            select(search.SESSIONS.c.ended).where(search.SESSIONS.c.session_id == session_id)
        ).first()
    return bool(row and row[0])


@dataclass
class Outcome:
    name: str
    mb: float
    publish_s: float
    index_s: float
    probes: list[float]


def run_stream(name: str, size: int, stack: Stack) -> Outcome:
    flood = Flood(STREAMS[name], size, stack.topic, stack.servers)
    thread = threading.Thread(target=flood.run, daemon=True)
    started = time.perf_counter()
    thread.start()
    latencies: list[float] = []
    while not ended(stack.index, flood.session.id):
        latencies.append(probe(stack))
        time.sleep(max(0.0, PROBE_EVERY_S - (latencies[-1] % PROBE_EVERY_S)))
    index_s = time.perf_counter() - started
    thread.join()
    return Outcome(name, flood.sent / 1e6, flood.published_s, index_s, latencies)


def summary(values: list[float]) -> str:
    if not values:
        return "-"
    return f"p50 {statistics.median(values):.2f} s, max {max(values):.2f} s (n={len(values)})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=300, help="size of each stream (default 300)")
    parser.add_argument("--streams", default=",".join(STREAMS), help="comma-separated")
    parser.add_argument("--baseline-probes", type=int, default=10)
    args = parser.parse_args()
    names = [n for n in args.streams.split(",") if n]
    unknown = set(names) - set(STREAMS)
    if unknown:
        parser.error(f"unknown streams {sorted(unknown)}; known: {', '.join(STREAMS)}")

    workdir = scratch("bench-fairness-")
    with (workdir / "broker.log").open("ab") as log:
        broker = EmbeddedBroker("127.0.0.1", free_port(), workdir / "broker", log)
        broker.start()
        try:
            servers, topic = broker.bootstrap_servers, "bench.sessions"
            create_topics(servers, topic, topic + ".dlq", partitions=PARTITIONS)
            index_url = f"sqlite:///{workdir / 'search.db'}"
            config = write_config(workdir / "sshtrail.toml", servers, topic, "sqlite://", index_url)
            member = Running("--config", str(config), "index", cwd=Path(workdir))
            member.expect("index: group")
            index = make_engine(index_url)
            stack = Stack(servers, topic, index, member)
            try:
                baseline = [probe(stack) for _ in range(args.baseline_probes)]
                print(f"baseline (no flood): search latency {summary(baseline)}", flush=True)
                for name in names:
                    outcome = run_stream(name, args.mb << 20, stack)
                    rate = outcome.mb / outcome.index_s
                    worst = max(outcome.probes) if outcome.probes else float("nan")
                    print(
                        f"{name:>13}: {outcome.mb:.0f} MB published in {outcome.publish_s:.1f} s,"
                        f" indexed in {outcome.index_s:.1f} s ({rate:.1f} MB/s); another "
                        f"session's search latency {summary(outcome.probes)}; worst vs "
                        f"baseline worst: {worst / max(baseline):.1f}x",
                        flush=True,
                    )
            finally:
                index.dispose()
                status, _, err = member.stop()
                if status != 0:
                    print(f"index member exited {status}: {err[-2000:]}")
        finally:
            broker.stop()


if __name__ == "__main__":
    main()
