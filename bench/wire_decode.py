"""Decode speed of the wire format, in events per second on one core.

Baseline, measured in the same run over the same messages: MessagePack
parsing alone (untyped ``msgspec.msgpack.decode``), i.e. what decoding would
cost with no validation, no typed events and no digest. The ratio shows what
strictness costs. Target from the foundation issue: >= 200,000 events/s.

    python -m bench.wire_decode [--sessions N] [--repeat R]
"""

from __future__ import annotations

import argparse
import os
import random
import time
from collections.abc import Callable

import msgspec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from sshtrail import events as ev
from sshtrail.chain import ChainWriter
from sshtrail.ids import uuid7
from sshtrail.wire import HEADER_SIZE, SIGNATURE_SIZE, decode_chunk


def interactive_session(rng: random.Random, key: Ed25519PrivateKey) -> list[bytes]:
    """A session shaped like a person at a shell: keystrokes, echoes, some output."""
    writer = ChainWriter(uuid7(), key)
    t = 0
    chunks = []
    start = ev.Start(
        0,
        "alice",
        "192.0.2.10:50022",
        "web01",
        "10.0.3.7",
        22,
        "deploy",
        "gw-1",
        "xterm-256color",
        120,
        40,
        time.time_ns(),
    )
    pending: list[ev.Event] = [start]
    for _ in range(40):
        for char in b"ls -la /var/log/nginx\r":
            t += rng.randrange(50_000_000, 200_000_000)
            pending += [ev.Input(t, bytes([char])), ev.Output(t + 300_000, bytes([char]))]
            if len(pending) >= 16:
                chunks.append(writer.encode(pending))
                pending = []
        t += 2_000_000
        pending.append(ev.Output(t, rng.randbytes(rng.randrange(200, 4000))))
    end = ev.End(t + 1, "closed", 1000, 100_000, len(chunks) + 1, writer.public_key)
    chunks.append(writer.encode([*pending, ev.Exit(t, 0), end]))
    return chunks


def best_rate(work: Callable[[], int], repeat: int) -> float:
    """Items per second of the fastest of ``repeat`` runs (the least disturbed one)."""
    best = 0.0
    for _ in range(repeat):
        started = time.perf_counter()
        items = work()
        best = max(best, items / (time.perf_counter() - started))
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # one core, as the target says
    rng = random.Random(7)
    key = Ed25519PrivateKey.generate()
    messages = [m for _ in range(args.sessions) for m in interactive_session(rng, key)]
    events = sum(len(decode_chunk(m).events) for m in messages)
    size = sum(len(m) for m in messages)

    def decode_all() -> int:
        for message in messages:
            decode_chunk(message)
        return events

    bodies = [m[HEADER_SIZE : -SIGNATURE_SIZE if m[3] & 1 else None] for m in messages]

    def parse_only() -> int:
        for body in bodies:
            msgspec.msgpack.decode(body)
        return events

    ours = best_rate(decode_all, args.repeat)
    baseline = best_rate(parse_only, args.repeat)
    per_message = f"{size / len(messages):.0f} B and {events / len(messages):.1f} events/message"
    print(f"messages: {len(messages)}, events: {events}, bytes: {size} ({per_message})")
    print(
        f"decode_chunk:            {ours:12,.0f} events/s  ({ours * size / events / 1e6:.0f} MB/s)"
    )
    print(f"baseline msgpack parse:  {baseline:12,.0f} events/s")
    print(f"ratio decode/baseline:   {ours / baseline:.2f}")
    print(f"target >= 200,000 events/s: {'met' if ours >= 200_000 else 'NOT met'}")


if __name__ == "__main__":
    main()
