"""Synthetic recordings in the wire format, and putting them on a topic."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from typing import TypedDict, Unpack

from confluent_kafka import Producer
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from sshtrail import events as ev
from sshtrail.chain import ChainWriter
from sshtrail.events import ExecMode
from sshtrail.ids import uuid7

SIGNER = Ed25519PrivateKey.generate()


def start_event(
    *,
    operator: str = "alice",
    client: str = "127.0.0.1:50000",
    target: str = "t1",
    host: str = "127.0.0.1",
    user: str = "root",
    gateway: str = "gw-test",
    term: str = "xterm",
    cols: int = 80,
    rows: int = 24,
    started_at: int | None = None,
) -> ev.Start:
    """A session's first event as the tests' gateway records it, at time 0 on port 22;
    a test names only what it is about. ``started_at`` (ns since the epoch): now if not
    given."""
    at = time.time_ns() if started_at is None else started_at
    return ev.Start(0, operator, client, target, host, 22, user, gateway, term, cols, rows, at)


class RecordingOptions(TypedDict, total=False):
    """What a synthetic recording may be told besides its size (defaults: :func:`_messages`)."""

    operator: str
    target: str
    exit_status: int | None
    signer: Ed25519PrivateKey
    text: bool
    legacy: bool


def recording(
    chunks: int = 3, payload: int = 100, **options: Unpack[RecordingOptions]
) -> tuple[uuid.UUID, list[bytes]]:
    """A closed session of ``chunks`` chunks (at least 2), ``payload`` output bytes each:
    random bytes, or with ``text`` lines such as a build log prints; with ``legacy``, as
    gateways before wire format 4 wrote it (only the end chunk signed)."""
    session_id, messages = streamed_recording(chunks, payload, **options)
    return session_id, list(messages)


def streamed_recording(
    chunks: int = 3, payload: int = 100, **options: Unpack[RecordingOptions]
) -> tuple[uuid.UUID, Iterator[bytes]]:
    """:func:`recording`'s session, its messages made one at a time as they are taken
    (a recording of any size in bounded memory)."""
    assert chunks >= 2
    session_id = uuid7()
    return session_id, _messages(session_id, chunks, payload, **options)


def _messages(
    session_id: uuid.UUID,
    chunks: int,
    payload: int,
    *,
    operator: str = "alice",
    target: str = "t1",
    exit_status: int | None = 0,
    signer: Ed25519PrivateKey = SIGNER,
    text: bool = False,
    legacy: bool = False,
) -> Iterator[bytes]:
    writer = ChainWriter(session_id, signer, legacy=legacy)
    start = start_event(operator=operator, target=target)
    yield writer.encode([start, ev.Exec(t=1, mode="exec", command=b"uptime")])
    t, sent = 2, 0
    for _ in range(chunks - 2):
        data = _lines(payload) if text else os.urandom(payload)
        yield writer.encode([ev.Output(t=t, data=data)])
        t, sent = t + 1_000_000, sent + len(data)
    end = ev.End(
        t=t + 1,
        reason="closed by client",
        bytes_in=0,
        bytes_out=sent,
        chunks=chunks,
        key=writer.public_key,
    )
    yield writer.encode([ev.Exit(t=t, status=exit_status), end])


def _lines(size: int) -> bytes:
    """``size`` bytes of terminal text: numbered lines of a compiler's progress."""
    out = bytearray()
    while len(out) < size:
        n = int.from_bytes(os.urandom(3), "big")
        out += f"[{n % 1000:3d}%] Building C object src/module_{n:08x}.c.o\r\n".encode()
    return bytes(out[:size])


def produce(servers: str, topic: str, messages: Iterable[tuple[bytes | None, bytes]]) -> int:
    """Publish ``(key, value)`` pairs, wait for every ack; returns how many."""
    producer = Producer(
        {
            "bootstrap.servers": servers,
            "enable.idempotence": True,
            "linger.ms": 5,
            "partitioner": "murmur2_random",
        }
    )
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


def typed_at_prompt(command: bytes, t: int, prompt: bytes = b"alice@t1:~$ ") -> list[ev.Event]:
    """A command typed at the prompt, echoed, and the next prompt (times ``t`` to ``t+4``)."""
    return [
        ev.Output(t, prompt),
        ev.Input(t + 1, command),
        ev.Output(t + 2, command),
        ev.Input(t + 3, b"\r"),
        ev.Output(t + 4, b"\r\n"),
    ]


def typed_session(
    commands: list[tuple[str, str]],
    *,
    operator: str = "alice",
    target: str = "t1",
    events_per_chunk: int = 8,
    started_at: int | None = None,
    signer: Ed25519PrivateKey = SIGNER,
    exit_status: int = 0,
) -> tuple[uuid.UUID, list[bytes]]:
    """A PTY session at a shell: each command typed key by key and echoed, then its output."""
    session_id = uuid7()
    writer = ChainWriter(session_id, signer)
    start = start_event(
        operator=operator,
        client="192.0.2.10:50022",
        target=target,
        host="10.0.3.7",
        user="deploy",
        started_at=started_at or None,
    )
    events: list[ev.Event] = [start, ev.Exec(t=1, mode="shell", command=b"")]
    t = 1_000_000
    for command, output in commands:
        events.append(ev.Output(t=t, data=b"deploy@web01:~$ "))
        for char in command.encode():
            t += 100_000_000
            events += [ev.Input(t=t, data=bytes([char])), ev.Output(t=t + 1000, data=bytes([char]))]
        t += 100_000_000
        events += [ev.Input(t=t, data=b"\r"), ev.Output(t=t + 1000, data=b"\r\n")]
        if output:
            t += 5_000_000
            text = output if output.endswith("\n") else output + "\n"
            events.append(ev.Output(t=t, data=text.replace("\n", "\r\n").encode()))
        t += 1_000_000
    messages = [
        writer.encode(events[i : i + events_per_chunk])
        for i in range(0, len(events), events_per_chunk)
    ]
    end = ev.End(
        t=t + 1,
        reason=f"exit status {exit_status}",
        bytes_in=0,
        bytes_out=0,
        chunks=len(messages) + 1,
        key=writer.public_key,
    )
    messages.append(writer.encode([ev.Exit(t=t, status=exit_status), end]))
    return session_id, messages


def events_session(
    chunks: Sequence[Sequence[ev.Event]],
    *,
    operator: str = "alice",
    target: str = "t1",
    term: str = "xterm",
    cols: int = 80,
    rows: int = 24,
    request: tuple[ExecMode, bytes] = ("shell", b""),
    end: bool = True,
    signer: Ed25519PrivateKey = SIGNER,
    started_at: int | None = None,
) -> tuple[uuid.UUID, list[bytes]]:
    """A session of the given events, a chunk per list; start, request and end added.
    Event times must not go backwards; they are taken as given. ``started_at`` (ns since
    the epoch): when the session began, now if not given."""
    session_id = uuid7()
    writer = ChainWriter(session_id, signer)
    start = start_event(
        operator=operator,
        target=target,
        term=term,
        cols=cols,
        rows=rows,
        started_at=started_at or None,
    )
    messages = [writer.encode([start, ev.Exec(0, *request)])]
    last = 0
    for events in chunks:
        messages.append(writer.encode(list(events)))
        last = events[-1].t
    if end:
        received, sent = ev.recorded_bytes(e for events in chunks for e in events)
        close = ev.End(last + 1, "closed", received, sent, len(messages) + 1, writer.public_key)
        messages.append(writer.encode([close]))
    return session_id, messages
