"""Garbage through running consumer groups: every message is stored, ignored as a
duplicate or dead-lettered; neither group stops; the good sessions around it are whole.

One store member and one index member read a topic holding good sessions with,
between them, hostile messages of every kind the security issue names: random
bytes, truncated and oversized chunks, a wrong version, wrong and missing keys,
duplicate seqs, seqs from the (far) future, flipped bits and empty messages.
The mix is drawn from a seeded generator (``SSHTRAIL_TEST_FUZZ_SEED``, and
``SSHTRAIL_TEST_FUZZ_COUNT`` messages) so a failure can be replayed.
"""

from __future__ import annotations

import random
import signal
import uuid
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest
from confluent_kafka import KafkaError, Message, Producer
from sqlalchemy import Engine, select

from consumer.deadletter import HEADER_GROUP
from consumer.store import SESSIONS
from sshtrail import events as ev
from sshtrail import search
from sshtrail.chain import ChainWriter, Status, verify_chain
from sshtrail.db import make_engine
from sshtrail.ids import uuid7
from sshtrail.wire import KNOWN_VERSIONS, encode_chunk
from tests.support.consumers import (
    group_lag,
    read_all,
    start_member,
    stored_chunks,
    wait_for,
    write_config,
)
from tests.support.knobs import knob
from tests.support.recordings import SIGNER, keyed, recording, start_event

pytestmark = pytest.mark.integration

SEED = int(knob("FUZZ_SEED", "20261125"))
COUNT = int(knob("FUZZ_COUNT", "300"))
#: About the largest value a broker takes by default (message.max.bytes, 1 MB, with
#: the record's overhead); a chunk is at most 1 MiB, so these are never valid.
LARGEST = 1_040_000  # near the broker default limit: it once stalled both groups


@dataclass
class Hostile:
    key: bytes | None
    value: bytes | None
    kind: str
    #: "dlq": must be dead-lettered; "kept": must be stored or ignored, never
    #: dead-lettered; "either": a flipped bit may or may not still decode.
    fate: str


def _flip(rng: random.Random, data: bytes) -> bytes:
    at = rng.randrange(6, len(data))  # past the header: a flip there is "wrong version"
    return data[:at] + bytes([data[at] ^ (1 << rng.randrange(8))]) + data[at + 1 :]


def hostile_messages(
    rng: random.Random, donors: list[tuple[uuid.UUID, list[bytes]]]
) -> tuple[list[Hostile], set[uuid.UUID]]:
    """``COUNT`` hostile messages, and the sessions whose stored form they spoil."""
    spoiled: set[uuid.UUID] = set()
    out: list[Hostile] = []
    for _ in range(COUNT):
        sid, chunks = rng.choice(donors)
        chunk = rng.choice(chunks)
        key = str(sid).encode()
        kind = rng.choice(
            [
                "random",
                "truncated",
                "oversized",
                "version",
                "wrong key",
                "no key",
                "empty",
                "duplicate",
                "future",
                "far future",
                "flipped",
            ]
        )
        if kind == "random":
            junk = rng.randbytes(rng.randrange(0, 3000))
            out.append(Hostile(rng.randbytes(8), junk, kind, "dlq"))
        elif kind == "truncated":
            out.append(Hostile(key, chunk[: rng.randrange(1, len(chunk))], kind, "dlq"))
        elif kind == "oversized":  # the most the broker takes (more it refuses to producers)
            out.append(Hostile(key, chunk[:6] + rng.randbytes(LARGEST - 6), kind, "dlq"))
        elif kind == "version":
            out.append(
                Hostile(
                    key,
                    chunk[:2]
                    + bytes([rng.choice([0, max(KNOWN_VERSIONS) + 1, 9, 255])])
                    + chunk[3:],
                    kind,
                    "dlq",
                )
            )
        elif kind == "wrong key":
            out.append(Hostile(str(uuid.uuid4()).encode(), chunk, kind, "dlq"))
        elif kind == "no key":
            out.append(Hostile(None, chunk, kind, "dlq"))
        elif kind == "empty":
            out.append(Hostile(key, None, kind, "dlq"))
        elif kind == "duplicate":
            out.append(Hostile(key, chunk, kind, "kept"))
        elif kind == "future":  # seqs 0 and 1, then 7: a session with a hole, never ended
            fid = uuid7()
            writer = ChainWriter(fid, SIGNER)
            start = start_event(
                operator="fuzz",
                client="192.0.2.1:1",
                host="h",
                user="u",
                gateway="g",
                term="",
                cols=0,
                rows=0,
                started_at=1_790_000_000_000_000_000,
            )
            made = [writer.encode([start])]
            made += [writer.encode([ev.Output(t=i, data=b"x")]) for i in range(1, 8)]
            out += [Hostile(str(fid).encode(), made[i], kind, "kept") for i in (0, 1, 7)]
        elif kind == "far future":  # a session never started, at seq 2**62
            fid = uuid7()
            far = encode_chunk(fid, 2**62, rng.randbytes(32), [ev.Output(t=1, data=b"y")])
            out.append(Hostile(str(fid).encode(), far, kind, "kept"))
        else:  # flipped: may still decode (stored, then fails verification) or not
            out.append(Hostile(key, _flip(rng, chunk), kind, "either"))
            spoiled.add(sid)
    return out, spoiled


def _produce(servers: str, topic: str, messages: list[tuple[bytes | None, bytes | None]]) -> None:
    producer = Producer(
        {
            "bootstrap.servers": servers,
            "enable.idempotence": True,
            "linger.ms": 5,
            "message.max.bytes": 4 << 20,
        }
    )
    errors: list[KafkaError] = []

    def delivered(error: KafkaError | None, _message: Message) -> None:
        if error is not None:
            errors.append(error)

    for key, value in messages:
        producer.produce(topic, value, key, on_delivery=delivered)
        producer.poll(0)
    assert producer.flush(60) == 0
    assert errors == []


def test_a_running_store_and_index_survive_every_kind_of_garbage(
    broker: object, store_topic: str, store_engine: Engine, database_url: str, tmp_path: Path
) -> None:
    servers = broker.bootstrap_servers  # type: ignore[attr-defined]
    rng = random.Random(SEED)
    good = [recording(chunks=4, payload=200) for _ in range(30)]
    donors = [recording(chunks=3, payload=50) for _ in range(10)]
    hostile, spoiled = hostile_messages(rng, donors)
    messages: list[tuple[bytes | None, bytes | None]] = []
    for sid, chunks in good + donors:
        messages += keyed(sid, chunks)
    for item in hostile:  # scattered between the good ones
        messages.insert(rng.randrange(len(messages) + 1), (item.key, item.value))
    _produce(servers, store_topic, messages)

    search_url = f"sqlite:///{tmp_path / 'search.db'}"
    # Most of this topic is garbage on purpose: the dead-letter limit, which would
    # stall the members on such a stream (test_runner.py), is off here.
    config = write_config(
        tmp_path / "sshtrail.toml",
        servers,
        store_topic,
        database_url,
        dead_letter_max_consecutive=0,
        dead_letter_max_ratio=0,
    )
    with config.open("a") as extra:
        extra.write(f'[search]\nurl = "{search_url}"\n')
    members = {name: start_member(config, name) for name in ("store", "index")}
    try:
        for name in members:
            group = f"{store_topic}-{name}"
            wait_for(
                lambda group=group: sum(group_lag(servers, group, store_topic).values()) == 0,  # type: ignore[misc]
                timeout=120,
                what=f"the {name} group to get through the topic",
            )
        for name, member in members.items():
            assert member.process.poll() is None, f"{name} died: {member.stderr}"
    finally:
        results = {name: member.stop(signal.SIGTERM) for name, member in members.items()}
    for name, (status, _, err) in results.items():
        assert status == 0, f"{name}: {err}"
        assert "Traceback" not in err, f"{name}: {err}"

    letters = read_all(servers, store_topic + ".dlq")
    per_group: dict[str, Counter[tuple[bytes | None, bytes | None]]] = {}
    for _p, _o, message in letters:
        group = dict(message.headers())[HEADER_GROUP].decode()  # type: ignore[attr-defined]
        per_group.setdefault(group, Counter())[message.key(), message.value()] += 1  # type: ignore[attr-defined]
    must = Counter((h.key, h.value) for h in hostile if h.fate == "dlq")
    may = Counter((h.key, h.value) for h in hostile if h.fate == "either")
    kinds = Counter(h.kind for h in hostile)
    for name in ("store", "index"):
        got = per_group.get(f"{store_topic}-{name}", Counter())
        assert got - may == must, f"{name}: dead letters differ (kinds sent: {dict(kinds)})"

    # The good sessions: every chunk stored as sent, closed, verified.
    stored = stored_chunks(store_engine)
    for sid, chunks in good:
        assert [stored[sid, seq] for seq in range(len(chunks))] == chunks
        assert (
            verify_chain(enumerate(chunks), {SIGNER.public_key().public_bytes_raw()}).status
            is Status.OK
        )
    with store_engine.connect() as conn:
        rows = {row.id: row for row in conn.execute(select(SESSIONS))}
    for sid, _ in good:
        assert (rows[sid].status, rows[sid].verified) == ("closed", True)
    # A session spoiled by a flipped copy of one of its chunks never passes as intact.
    keys = {SIGNER.public_key().public_bytes_raw()}
    for sid in spoiled:
        ours = sorted((seq, data) for (s, seq), data in stored.items() if s == sid)
        assert verify_chain(ours, keys).status is not Status.OK or ours == list(
            enumerate(dict(donors)[sid])
        )
    futures = [row for row in rows.values() if row.operator == "fuzz"]
    assert all(row.status == "incomplete" and row.gaps for row in futures)

    index = make_engine(search_url)
    try:
        with index.connect() as conn:
            ended = set(
                conn.execute(
                    select(search.SESSIONS.c.session_id).where(search.SESSIONS.c.ended)
                ).scalars()
            )
    finally:
        index.dispose()
    assert {sid for sid, _ in good} <= ended
