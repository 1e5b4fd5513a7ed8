"""Synthetic recordings in the wire format, and putting them on a topic."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterable

from confluent_kafka import Producer
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from sshtrail import events as ev
from sshtrail.chain import ChainWriter
from sshtrail.ids import uuid7

SIGNER = Ed25519PrivateKey.generate()


def recording(
    chunks: int = 3,
    payload: int = 100,
    *,
    operator: str = "alice",
    target: str = "t1",
    exit_status: int | None = 0,
    signer: Ed25519PrivateKey = SIGNER,
) -> tuple[uuid.UUID, list[bytes]]:
    """A closed session of ``chunks`` chunks (at least 2), ``payload`` output bytes each."""
    assert chunks >= 2
    session_id = uuid7()
    writer = ChainWriter(session_id, signer)
    start = ev.Start(t=0, operator=operator, client="127.0.0.1:50000", target=target,
                     host="127.0.0.1", port=22, user="root", gateway="gw-test", term="xterm",
                     cols=80, rows=24, started_at=time.time_ns())  # fmt: skip
    messages = [writer.encode([start, ev.Exec(t=1, mode="exec", command=b"uptime")])]
    t, sent = 2, 0
    for _ in range(chunks - 2):
        data = os.urandom(payload)
        messages.append(writer.encode([ev.Output(t=t, data=data)]))
        t, sent = t + 1_000_000, sent + len(data)
    end = ev.End(t=t + 1, reason="closed by client", bytes_in=0, bytes_out=sent,
                 chunks=chunks, key=writer.public_key)  # fmt: skip
    messages.append(writer.encode([ev.Exit(t=t, status=exit_status), end]))
    return session_id, messages


def produce(servers: str, topic: str, messages: Iterable[tuple[bytes | None, bytes]]) -> int:
    """Publish ``(key, value)`` pairs, wait for every ack; returns how many."""
    producer = Producer({"bootstrap.servers": servers, "enable.idempotence": True,
                         "linger.ms": 5, "partitioner": "murmur2_random"})  # fmt: skip
    count = 0
    for key, value in messages:
        while True:
            try:
                producer.produce(topic, value, key)
                break
            except BufferError:
                producer.poll(0.1)
        count += 1
        producer.poll(0)
    assert producer.flush(60) == 0, "messages not acknowledged"
    return count


def keyed(session_id: uuid.UUID, messages: list[bytes]) -> list[tuple[bytes | None, bytes]]:
    return [(str(session_id).encode(), message) for message in messages]
