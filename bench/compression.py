"""What librdkafka's compression costs and saves on recordings: lz4 against none.

Issue 34 asks for compression where it pays: bulk binary transfers should not
pay lz4 for bytes it cannot shrink, terminal output should keep its saving.
This measures both sides with the gateway's producer settings (idempotent,
``acks=all``, ``linger.ms`` 5) against the embedded broker: 64 KiB messages,
as the gateway's chunks are, of two kinds of bytes --

* random bytes, what an ``scp`` of a compressed archive carries;
* terminal output: ``ls -laR`` of ``/usr``, lines of names, sizes and dates;

each published with ``compression.type`` lz4 and none. Printed per run: the
process's CPU per MB published (librdkafka's threads are the process's, so
compressing is in it), that as a ratio to "none" on the same bytes, and the
bytes sent to the broker per byte published (librdkafka's own statistics).

    python -m bench.compression [--mb 64]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import time
import uuid
from dataclasses import dataclass

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

from bench.scratch import scratch
from sshtrail.broker import EmbeddedBroker, free_port

MESSAGE = 65_536
KINDS = ("random", "terminal")


@dataclass(frozen=True)
class Run:
    cpu_ms_per_mb: float
    sent_per_byte: float


def terminal_bytes(size: int) -> bytes:
    """Real terminal output, repeated up to ``size``: what ``ls -laR /usr`` prints."""
    listing = subprocess.run(
        ["ls", "-laR", "/usr"], capture_output=True, check=False, env={"LC_ALL": "C"}
    ).stdout
    return (listing * (size // max(len(listing), 1) + 1))[:size]


def publish(servers: str, topic: str, data: bytes, compression: str) -> Run:
    """Publish ``data`` in :data:`MESSAGE`-byte messages, the gateway's way; its cost."""
    stats: list[dict[str, object]] = []
    producer = Producer(
        {
            "bootstrap.servers": servers,
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 5,
            "compression.type": compression,
            "message.max.bytes": 2 << 20,
            "statistics.interval.ms": 100,
            "stats_cb": lambda text: stats.append(json.loads(text)),
        }
    )
    producer.list_topics(topic, timeout=30)  # connected before the clock starts
    key = uuid.uuid4().bytes
    started = time.process_time()
    for at in range(0, len(data), MESSAGE):
        while True:
            try:
                producer.produce(topic, data[at : at + MESSAGE], key=key)
                break
            except BufferError:
                producer.poll(0.05)
        producer.poll(0)
    producer.flush(120)
    cpu = time.process_time() - started
    time.sleep(0.3)  # one more statistics report, with every request counted
    producer.poll(0.3)
    producer.flush(5)
    brokers = stats[-1]["brokers"] if stats else {}
    assert isinstance(brokers, dict)
    sent = sum(int(b["txbytes"]) for b in brokers.values())
    return Run(cpu * 1e3 / (len(data) / 1e6), sent / len(data))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3, help="best of")
    args = parser.parse_args()
    size = args.mb * 1_000_000
    data = {"random": os.urandom(size), "terminal": terminal_bytes(size)}
    workdir = scratch("bench-compression-")
    with (workdir / "broker.log").open("ab") as log:
        broker = EmbeddedBroker("127.0.0.1", free_port(), workdir / "broker", log)
        broker.start()
        try:
            servers = broker.bootstrap_servers
            admin = AdminClient({"bootstrap.servers": servers})
            for future in admin.create_topics([NewTopic("bench.compression", 1, 1)]).values():
                future.result(30)
            best: dict[tuple[str, str], Run] = {}
            publish(servers, "bench.compression", data["random"][: MESSAGE * 64], "lz4")  # warm
            for _ in range(args.rounds):
                for kind in KINDS:
                    for compression in ("none", "lz4"):
                        run = publish(servers, "bench.compression", data[kind], compression)
                        known = best.get((kind, compression))
                        if known is None or run.cpu_ms_per_mb < known.cpu_ms_per_mb:
                            best[(kind, compression)] = run
        finally:
            broker.stop()
    print(f"{args.mb} MB in {MESSAGE // 1024} KiB messages, best of {args.rounds} (CPU of")
    print("the producing process, librdkafka's threads included):")
    for kind in KINDS:
        none = best[(kind, "none")]
        for compression in ("none", "lz4"):
            run = best[(kind, compression)]
            print(
                f"  {kind:<9} {compression:<5} {run.cpu_ms_per_mb:6.2f} ms/MB "
                f"({run.cpu_ms_per_mb / none.cpu_ms_per_mb:4.2f}x none)  "
                f"sent {run.sent_per_byte:5.3f} B per B "
                f"({1 / run.sent_per_byte:4.1f}:1)"
            )


if __name__ == "__main__":
    main()
