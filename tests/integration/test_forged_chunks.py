"""Forged chunks on the sessions topic (issue 32, #3): a client with produce rights sends
chunks with a live session's next seqs, signed by a key of its own. The store keeps
them as evidence and takes the gateway's, search does not credit their text to the
operator, and the live view shows the real lines."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import uuid
from pathlib import Path

import msgspec
import pexpect
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import select

from consumer.store import SESSIONS
from consumer.web.live import Item, LiveHub
from sshtrail import events as ev
from sshtrail import migrate
from sshtrail.db import make_engine
from sshtrail.ids import uuid7
from sshtrail.settings import Settings
from sshtrail.wire import SIGNATURE_SIZE, Chunk, chain_digest, decode_chunk, encode_chunk
from tests.support.cli import sshtrail
from tests.support.consumers import read_all, stored_chunks, wait_for, write_config
from tests.support.gateway import GatewayProcess
from tests.support.kafka import Broker
from tests.support.recorded import store_and_index
from tests.support.recordings import keyed, produce
from tests.support.sshd import SshdTarget

pytestmark = pytest.mark.integration

FORGED = b"FORGED-by-mallory"


def published(gateway: GatewayProcess) -> list[tuple[int, int, Chunk]]:
    """(partition, offset, chunk) of every chunk on the gateway's topic."""
    found = read_all(gateway.servers, gateway.topic)
    return [(p, o, decode_chunk(m.value())) for p, o, m in found]  # type: ignore[attr-defined]


def outputs(events: list[ev.Event]) -> bytes:
    return b"".join(e.data for e in events if isinstance(e, ev.Output))


def forgeries(session_id: uuid.UUID, last: Chunk) -> list[bytes]:
    """What the attacker sends: the session's next five seqs (the last an end) and
    the start of a session of its own, all signed by its own key."""
    forger = Ed25519PrivateKey.generate()
    key = forger.public_key().public_bytes_raw()
    t, prev, seq = last.events[-1].t, last.digest, last.seq + 1
    made = []
    for n in range(5):
        events: list[ev.Event] = [ev.Output(t=t + n + 1, data=FORGED + b" rm -rf /srv\r\n")]
        if n == 4:
            events.append(ev.End(t + n + 2, "closed by client", 0, 0, seq + n + 1, key))
        made.append(encode_chunk(session_id, seq + n, prev, events, forger))
        prev = chain_digest(made[-1])
    return made


def test_forged_chunks_are_kept_as_evidence_and_the_gateways_are_taken(
    tmp_path: Path, broker: Broker, sshd: SshdTarget, database_url: str
) -> None:
    gateway = GatewayProcess(tmp_path / "gw", broker.bootstrap_servers, sshd, dead_letters=True)
    gateway.start()
    try:
        argv = gateway.ssh("alice:t1", tty=True)
        child = pexpect.spawn(argv[0], argv[1:], timeout=30, env={**os.environ, "TERM": "xterm"})
        child.sendline("echo real-$((40+2))")
        child.expect("real-42")

        # The attacker reads the topic for the session's newest chunk, then publishes.
        def newest() -> Chunk | None:
            chunks = [c for _, _, c in published(gateway)]
            seen = outputs([e for c in chunks for e in c.events])
            return chunks[-1] if b"real-42" in seen else None

        wait_for(lambda: newest() is not None, what="the session's first line on the topic")
        last = newest()
        assert last is not None
        session_id = last.session_id
        forged = forgeries(session_id, last)
        mallory = ev.Start(
            0, "mallory", "10.6.6.6:666", "t1", "10.0.0.1", 22, "root", "gw-test", "", 80, 24, 1
        )
        own_id = uuid7()
        own = encode_chunk(own_id, 0, bytes(32), [mallory], Ed25519PrivateKey.generate())
        produce(gateway.servers, gateway.topic, [*keyed(session_id, forged), *keyed(own_id, [own])])

        child.sendline("echo real-$((50+5))")  # the real chunks with the seqs forged
        child.expect("real-55")
        child.sendline("exit")
        child.expect(pexpect.EOF)
    finally:
        gateway.stop()

    on_topic = published(gateway)
    ours = [c for _, _, c in on_topic if c.session_id == session_id and c.raw not in forged]
    real = {c.seq: c.raw for c in ours}
    refused = {(p, o) for p, o, c in on_topic if c.raw in forged}
    assert len(refused) == len(forged)

    search_url = f"sqlite:///{tmp_path / 'search.db'}"
    config = write_config(
        tmp_path / "members.toml", broker.bootstrap_servers, gateway.topic, database_url, search_url
    )
    signer = gateway.workdir / "state" / "gateway" / "recording_ed25519_key"
    config.write_text(config.read_text() + f'[gateway]\nsigning_key = "{signer}"\n')
    migrate.upgrade(database_url)
    store_and_index(config, database_url, search_url, sessions=1)

    # The store: the gateway's chunks, no session of the forger's, the forgeries as evidence.
    engine = make_engine(database_url)
    try:
        stored = stored_chunks(engine)
        with engine.connect() as conn:
            sessions = set(conn.execute(select(SESSIONS.c.id)).scalars())
    finally:
        engine.dispose()
    assert sessions == {session_id}
    assert stored == {(session_id, seq): raw for seq, raw in real.items()}
    [verdict] = json.loads(sshtrail(config, "verify", str(session_id), "--json").stdout)
    assert verdict["status"] == "ok", verdict
    assert {(r["partition"], r["offset"]) for r in verdict["refused"]} == refused
    assert all("not a trusted gateway key" in r["reason"] for r in verdict["refused"])
    assert [r["seq"] for r in verdict["refused"]] == [last.seq + n for n in range(1, 6)]
    shown = sshtrail(config, "show", str(session_id)).stdout
    assert shown.count(b"refused chunk") == len(forged)

    # Search: the real line is the operator's, the forged text is nobody's.
    assert FORGED not in sshtrail(config, "search", "FORGED", "--json", check=False).stdout
    hits = json.loads(sshtrail(config, "search", "real-55", "--json").stdout)
    assert hits, "the real line is found"
    assert {hit["session"] for hit in hits} == {str(session_id)}

    # The live view, from the session's first chunk: the real lines, not the forged ones.
    settings = msgspec.convert(
        {
            "kafka": {"bootstrap_servers": broker.bootstrap_servers, "topic": gateway.topic},
            "gateway": {"signing_key": str(signer)},
        },
        Settings,
        strict=False,
    )
    hub = LiveHub(settings)

    async def watch() -> list[ev.Event]:
        watcher = hub.watch(session_id, asyncio.get_running_loop())
        seen: list[ev.Event] = []
        while True:
            item: Item = await asyncio.wait_for(watcher.queue.get(), 60)
            if item is None:
                return seen
            assert not isinstance(item, str), item
            seen += item

    try:
        shown_live = outputs(asyncio.run(watch()))
    finally:
        hub.close()
    assert b"real-55" in shown_live
    assert FORGED not in shown_live


def test_copies_of_real_chunks_with_spoiled_signatures_do_not_replace_them(
    tmp_path: Path, broker: Broker, sshd: SshdTarget, database_url: str
) -> None:
    """The attack on the first version of this defence: a chunk's digest does not cover
    its signature, so copies of the real chunks with spoiled signatures, ended by a
    byte-exact copy of the real end chunk, were all vouched for by that end and stored
    in place of the real ones -- a genuine session then read as tampered. Read by the
    store in the same batch as the real chunks (a group catching up), the copies are
    refused and kept as evidence; the real chunks stay."""
    gateway = GatewayProcess(tmp_path / "gw", broker.bootstrap_servers, sshd, dead_letters=True)
    gateway.start()
    try:
        command = "for i in 1 2 3 4 5; do echo line-$i; sleep 0.3; done"
        ran = gateway.ssh("alice:t1", command)
        assert subprocess.run(ran, capture_output=True, timeout=60, check=False).returncode == 0
    finally:
        gateway.stop()
    real = sorted((c for _, _, c in published(gateway)), key=lambda c: c.seq)
    session_id = real[0].session_id
    assert len(real) >= 3
    assert real[-1].end is not None
    spoiled = [c.raw[:-SIGNATURE_SIZE] + os.urandom(SIGNATURE_SIZE) for c in real[:-1]]
    produce(gateway.servers, gateway.topic, keyed(session_id, [*spoiled, real[-1].raw]))

    search_url = f"sqlite:///{tmp_path / 'search.db'}"
    config = write_config(
        tmp_path / "members.toml", broker.bootstrap_servers, gateway.topic, database_url, search_url
    )
    signer = gateway.workdir / "state" / "gateway" / "recording_ed25519_key"
    config.write_text(config.read_text() + f'[gateway]\nsigning_key = "{signer}"\n')
    migrate.upgrade(database_url)
    store_and_index(config, database_url, search_url, sessions=1)

    engine = make_engine(database_url)
    try:
        stored = stored_chunks(engine)
    finally:
        engine.dispose()
    assert stored == {(session_id, c.seq): c.raw for c in real}, "the real chunks stay"
    [verdict] = json.loads(sshtrail(config, "verify", str(session_id), "--json").stdout)
    assert verdict["status"] == "ok", verdict
    assert sorted(r["seq"] for r in verdict["refused"]) == [c.seq for c in real[:-1]]
    assert {r["reason"] for r in verdict["refused"]} == {"its signature does not verify"}
