"""A gateway of two workers (``gateway.workers = 2``): a worker killed mid-session,
terminate and lock reaching sessions on either worker, and failed logins counted
against the gateway's limits whichever worker they reached.

The real OpenSSH client through a real ``sshtrail gateway`` (its supervisor and two
worker processes sharing the port) to the test sshd, Apache Kafka from the test
harness, and a real store member. Which worker holds a session is read from the
workers' spools (each has its own directory).
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import urllib.request
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import asyncssh
import pexpect
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select

from sshtrail import migrate
from sshtrail.broker import free_port
from sshtrail.db import make_engine
from sshtrail.events import Exec, Output
from sshtrail.passwords import hash_password
from sshtrail.tables import SESSIONS
from sshtrail.wire import decode_chunk
from tests.support.cli import Running, sshtrail
from tests.support.consumers import read_all, start_member, write_config
from tests.support.gateway import GatewayProcess, toml_value
from tests.support.kafka import Broker
from tests.support.sshd import SshdTarget
from tests.support.waiting import wait_for

pytestmark = pytest.mark.e2e

LINES = 400  # each scripted session prints this many lines, 20 ms apart: ~8 s


class Stack:
    """A two-worker gateway, a store member, and an auditor's settings."""

    def __init__(self, root: Path, broker: Broker, sshd: SshdTarget) -> None:
        self.metrics_port = free_port()
        self.gateway = GatewayProcess(
            root / "gw",
            broker.bootstrap_servers,
            sshd,
            workers=2,
            instance="gw-workers",
            extra=f"metrics_port = {self.metrics_port}",
        )
        self.servers = broker.bootstrap_servers
        self.store_url = f"sqlite:///{root / 'store.db'}"
        migrate.upgrade(self.store_url)
        self.config = write_config(
            root / "sshtrail.toml", broker.bootstrap_servers, self.gateway.topic, self.store_url
        )
        signer = self.gateway.workdir / "state" / "gateway" / "recording_ed25519_key"
        self.config.write_text(
            self.config.read_text()
            + f'[control]\ntopic = "{self.gateway.control_topic}"\n'
            + f'signing_key = "{self.gateway.control_key}"\n'
            + f'[gateway]\nsigning_key = "{signer}"\n'
        )
        self.engine = make_engine(self.store_url)
        self.store: Running | None = None
        #: The scripted sessions started, by mark (the first word of their command).
        self.clients: dict[str, subprocess.Popen[bytes]] = {}

    def start(self) -> None:
        self.gateway.start()
        self.store = start_member(self.config, "store")

    def stop(self) -> None:
        if self.store is not None:
            self.store.stop(signal.SIGTERM)
        if self.gateway.process is not None and self.gateway.process.poll() is None:
            self.gateway.stop()
        self.engine.dispose()

    def run(self, *argv: str) -> subprocess.CompletedProcess[bytes]:
        return sshtrail(self.config, *argv, check=False)

    def metric(self, name: str, **labels: str) -> float:
        """One series of the gateway's ``/metrics`` (the supervisor's sum)."""
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics") as page:
            text = page.read().decode()
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == name and sample.labels == labels:
                    return float(sample.value)
        raise AssertionError(f"{name} {labels} not in /metrics:\n{text}")

    def worker_pids(self) -> dict[int, int]:
        """Each worker's process id, as the supervisor last logged it (once listening)."""
        pids = {}
        for line in self.gateway.output:
            found = re.search(r"gateway worker (\d+) \(pid (\d+)\) listening", line)
            if found:
                pids[int(found[1])] = int(found[2])
        return pids

    def worker_of(self, session_id: uuid.UUID) -> int | None:
        """The worker whose spool holds ``session_id``'s chunks."""
        for index in (0, 1):
            spool = self.gateway.worker_spool_dir(index)
            if any(c.session_id == session_id for c in self.gateway.spooled_chunks(spool)):
                return index
        return None

    def sessions(self) -> dict[str, tuple[uuid.UUID, str, str | None]]:
        """Stored sessions by the first word of their command: (id, status, end reason)."""
        marks = {}
        for _p, _o, message in read_all(self.servers, self.gateway.topic):
            chunk = decode_chunk(message.value())  # type: ignore[attr-defined]
            for event in chunk.events:
                if isinstance(event, Exec):
                    command = event.command.decode()
                    marks[chunk.session_id] = command.split(";")[0].removeprefix("echo ")
        found = {}
        with self.engine.connect() as conn:
            rows = conn.execute(select(SESSIONS.c.id, SESSIONS.c.status, SESSIONS.c.end_reason))
            for session_id, status, reason in rows:
                found[marks.get(session_id, session_id.hex)] = (session_id, status, reason)
        return found

    def output_of(self, session_id: uuid.UUID) -> bytes:
        """stdout recorded for ``session_id`` on the topic, each chunk once."""
        chunks = {}
        for _p, _o, message in read_all(self.servers, self.gateway.topic):
            chunk = decode_chunk(message.value())  # type: ignore[attr-defined]
            if chunk.session_id == session_id:
                chunks[chunk.seq] = chunk
        return b"".join(
            e.data
            for _seq, c in sorted(chunks.items())
            for e in c.events
            if isinstance(e, Output) and not e.stderr
        )


@pytest.fixture
def stack(tmp_path: Path, broker: Broker, sshd: SshdTarget) -> Iterator[Stack]:
    made = Stack(tmp_path, broker, sshd)
    made.start()
    yield made
    made.stop()


def scripted(stack: Stack, mark: str) -> subprocess.Popen[bytes]:
    script = f'echo {mark}; for i in $(seq 1 {LINES}); do echo "$i $RANDOM"; sleep 0.02; done'
    return subprocess.Popen(
        stack.gateway.ssh("alice:t1", script), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
    )


def spread(stack: Stack, start: int, most: int) -> dict[str, int]:
    """mark -> worker, once sessions started ``start`` at a time are stored and on both
    workers (the kernel picks the worker: a few more until each has one)."""
    where: dict[str, int] = {}
    while len(stack.clients) < most:
        for _ in range(start):
            mark = f"s{len(stack.clients)}-{uuid.uuid4().hex[:6]}"
            stack.clients[mark] = scripted(stack, mark)
        wait_for(
            lambda: set(stack.clients) <= set(stack.sessions()),
            timeout=60,
            what="every session stored",
        )
        for mark, (session_id, _status, _reason) in stack.sessions().items():
            if mark in stack.clients and mark not in where:
                worker = stack.worker_of(session_id)
                if worker is not None:
                    where[mark] = worker
        if set(where.values()) == {0, 1}:
            return where
    raise AssertionError(f"{most} sessions all went to one worker: {where}")


def test_a_worker_killed_mid_session_ends_only_its_sessions_and_loses_nothing(
    stack: Stack,
) -> None:
    where = spread(stack, 4, 16)
    pids = stack.worker_pids()
    assert set(pids) == {0, 1}, "".join(stack.gateway.output[-20:])
    # Killed mid-session: once each of worker 1's sessions has output on the topic (a
    # kill within a chunk's first moments leaves nothing yet recorded to check against).
    ids = {mark: session_id for mark, (session_id, _s, _r) in stack.sessions().items()}
    wait_for(
        lambda: all(
            stack.output_of(ids[mark]).startswith(mark.encode())
            for mark, worker in where.items()
            if worker == 1
        ),
        timeout=30,
        what="worker 1's sessions recording output",
    )
    os.kill(pids[1], signal.SIGKILL)
    outputs = {}
    for mark, client in stack.clients.items():
        outputs[mark], _ = client.communicate(timeout=120)
    for mark, worker in where.items():
        client = stack.clients[mark]
        if worker == 1:  # the operator's ssh saw its connection close
            assert client.returncode == 255, mark
        else:  # the other worker's sessions went on to their end
            assert client.returncode == 0, mark
            assert outputs[mark].count(b"\n") == LINES + 1, mark
    # The supervisor replaced the worker; its successor published what the spool held
    # and signed the end of each session the dead one left open.
    wait_for(
        lambda: (
            len([p for k, p in stack.worker_pids().items() if k == 1]) == 1
            and stack.worker_pids()[1] != pids[1]
        ),
        timeout=60,
        what="worker 1 replaced",
    )
    assert any("gateway worker 1" in line and "died" in line for line in stack.gateway.output)

    def ended() -> bool:
        found = stack.sessions()
        return all(m in found and found[m][1] != "active" for m in where)

    wait_for(ended, timeout=120, what="every session stored with its end")
    found = stack.sessions()
    for mark, worker in where.items():
        session_id, status, reason = found[mark]
        if worker == 1:
            assert status == "interrupted", (mark, status, reason)
            assert (reason or "").startswith("interrupted: the gateway stopped unexpectedly")
            # the recording up to the kill: what the operator saw, or a prefix of it
            recorded = stack.output_of(session_id)
            assert recorded.startswith(mark.encode()), mark
            assert outputs[mark].startswith(recorded) or recorded.startswith(outputs[mark])
        else:
            assert status == "closed", (mark, status, reason)
            assert stack.output_of(session_id) == outputs[mark], mark
        verified = stack.run("verify", session_id.hex)
        assert verified.returncode == 0, verified.stdout + verified.stderr
    # Nothing doubled: no (session, seq) on the topic with two different chunks, and the
    # store holds each once. A chunk past the position the dead worker last saved as
    # acknowledged is published again by its successor, byte for byte (the spool's
    # design, producer/spool.py): the store keeps one.
    copies: Counter[tuple[uuid.UUID, int]] = Counter()
    raw: dict[tuple[uuid.UUID, int], bytes] = {}
    for _p, _o, message in read_all(stack.servers, stack.gateway.topic):
        chunk = decode_chunk(message.value())  # type: ignore[attr-defined]
        key = (chunk.session_id, chunk.seq)
        copies[key] += 1
        assert raw.setdefault(key, chunk.raw) == chunk.raw, key
    with stack.engine.connect() as conn:
        stored = conn.exec_driver_sql("SELECT session_id, seq, count(*) FROM chunks GROUP BY 1, 2")
        assert all(n == 1 for _s, _q, n in stored)
    # And the replaced worker records again.
    after = subprocess.run(
        stack.gateway.ssh("alice:t1", "echo after-$((40+2))"),
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert b"after-42" in after.stdout
    # A supervisor killed -9 takes its workers with it: no orphan keeps the port.
    workers = stack.worker_pids()
    assert stack.gateway.process is not None
    stack.gateway.kill()
    wait_for(
        lambda: not any(Path(f"/proc/{pid}").exists() for pid in workers.values()),
        timeout=30,
        what="the workers to end with their supervisor",
    )


def test_terminate_and_lock_reach_sessions_on_every_worker(stack: Stack) -> None:
    children: dict[str, tuple[pexpect.spawn, uuid.UUID, int]] = {}
    for n in range(16):
        argv = stack.gateway.ssh("alice:t1", tty=True)
        child = pexpect.spawn(argv[0], argv[1:], timeout=30, env={**os.environ, "TERM": "xterm"})
        child.expect("recorded and may be watched")
        child.sendline(f"echo mark-{n}-$((40+2))")
        child.expect(f"mark-{n}-42")
        session_id = _newest_active(stack, {c[1] for c in children.values()})
        worker = stack.worker_of(session_id)
        assert worker is not None
        children[f"mark-{n}"] = (child, session_id, worker)
        held = Counter(w for _c, _s, w in children.values())
        if held[0] >= 2 and held[1] >= 2:
            break
    held = Counter(w for _c, _s, w in children.values())
    assert min(held[0], held[1]) >= 2, f"sessions all on one worker: {held}"
    # One /metrics for the gateway: the sessions of both workers.
    assert stack.metric("sshtrail_gateway_sessions") == len(children)
    assert stack.metric("sshtrail_gateway_workers") == 2
    # One session on each worker terminated: only the worker holding it acts.
    for worker in (0, 1):
        mark, (child, session_id, _w) = next((m, c) for m, c in children.items() if c[2] == worker)
        done = stack.run("terminate", session_id.hex[:12], "--reason", f"w{worker}", "--as", "ann")
        assert done.returncode == 0, done.stderr
        assert f"terminated by ann: w{worker}".encode() in done.stdout
        child.expect(f"terminated by ann: w{worker}")
        child.expect(pexpect.EOF)
        del children[mark]
    # A lock with --end-sessions ends the rest, on both workers, and both refuse alice.
    locked = stack.run("lock", "alice", "--reason", "incident 9", "--end-sessions", "--as", "ann")
    assert locked.returncode == 0, locked.stderr
    for child, _session_id, _worker in children.values():
        child.expect("operator locked by ann: incident 9")
        child.expect(pexpect.EOF)
    refusals = 0
    for _ in range(6):  # the kernel spreads them: some reach each worker
        refused = subprocess.run(
            stack.gateway.ssh("alice:t1", "echo hi"), capture_output=True, timeout=30, check=False
        )
        assert refused.returncode != 0
        assert b"locked by ann: incident 9" in refused.stderr
        refusals += 1
    assert refusals == 6
    assert stack.metric("sshtrail_gateway_refusals_total", reason="operator locked") == 6
    # Both workers count their refusals; /metrics is not configured here, but each
    # worker logs the lock it applied.
    applied = [line for line in stack.gateway.output if "operator alice locked by ann" in line]
    assert {line.split()[3] for line in applied} >= {"worker-0", "worker-1"}, applied


def _newest_active(stack: Stack, known: set[uuid.UUID]) -> uuid.UUID:
    found: list[uuid.UUID] = []

    def stored() -> bool:
        with stack.engine.connect() as conn:
            ids = conn.execute(select(SESSIONS.c.id).where(SESSIONS.c.status == "active"))
            found[:] = [i for i in ids.scalars() if i not in known]
        return bool(found)

    wait_for(stored, what="the session stored as active", timeout=30)
    return found[0]


PASSWORD = "correct horse battery staple"
#: Failed logins allowed per operator name (``gateway.auth_failures_per_operator``).
NAME_LIMIT = 4
#: Operators with a password: each name is guessed at until its limit; a name whose
#: guesses all reached one worker proves nothing, and the next is tried. (And "pia",
#: never guessed at.)
GUESSED = [f"pat{n}" for n in range(6)]


@pytest.fixture
def guessed(tmp_path: Path, broker: Broker, sshd: SshdTarget) -> Iterator[Stack]:
    """Two workers, operators with a password, and limits per name only (every test
    client comes from 127.0.0.1: the address's limit is set out of the way)."""
    made = Stack(tmp_path, broker, sshd)
    made.gateway.extra += (
        f"\nauth_failures_per_operator = {NAME_LIMIT}\nauth_attempts_per_minute = 1000"
        "\nmax_auth_tries = 10"
    )
    made.gateway.config_tail = "".join(
        f'[[operators]]\nname = "{name}"\n'
        f'password_hash = {toml_value(hash_password(PASSWORD))}\ntargets = ["t1"]\n'
        for name in [*GUESSED, "pia"]
    )
    made.gateway.start()
    yield made
    made.stop()


async def _log_in(gateway: GatewayProcess, login: str, password: str) -> bool:
    """One connection, one password: whether it logged in."""
    try:
        conn = await asyncssh.connect(
            "127.0.0.1",
            gateway.port,
            username=login,
            password=password,
            known_hosts=str(gateway.known_hosts),
            client_keys=None,
            preferred_auth="password",
        )
    except (asyncssh.PermissionDenied, asyncssh.DisconnectError, ConnectionError):
        return False
    async with conn:
        await conn.run("true", check=False)
    return True


def _workers_saying(stack: Stack, text: str) -> list[str]:
    """The worker of each connection's last log line holding ``text``, in order."""
    return [
        line.split()[3]
        for line in stack.gateway.output
        if text in line and " producer.connection: " in line
    ]


def _await_lines(stack: Stack, text: str, count: int) -> None:
    wait_for(
        lambda: len(_workers_saying(stack, text)) == count,
        timeout=30,
        what=f"{count} connections logged {text!r}",
    )


def test_failed_logins_spread_over_both_workers_meet_one_limit(guessed: Stack) -> None:
    gateway = guessed.gateway
    for name in GUESSED:
        failed = f" {name}:t1: refused: authentication failed"
        for n in range(NAME_LIMIT):
            assert not asyncio.run(_log_in(gateway, f"{name}:t1", f"wrong {n}"))
            _await_lines(guessed, failed, n + 1)
        if len(set(_workers_saying(guessed, failed))) == 2:
            break
    else:
        raise AssertionError(f"every name's failures reached one worker: {gateway.output}")
    # The limit is reached, counted over both workers: the right password is not
    # looked at, whichever worker the kernel gives the connection to.
    refused = f" {name}:t1: refused: too many failures for this operator"
    tries = 0
    while tries < 12 and len(set(_workers_saying(guessed, refused))) < 2:
        assert not asyncio.run(_log_in(gateway, f"{name}:t1", PASSWORD)), tries
        tries += 1
        _await_lines(guessed, refused, tries)
    assert set(_workers_saying(guessed, refused)) == {"worker-0", "worker-1"}
    # Other names are not: only this one was guessed at to its limit.
    assert asyncio.run(_log_in(gateway, "pia:t1", PASSWORD))
    # One /metrics: the refusals of both workers.
    kind = "too many failures for this operator"
    assert guessed.metric("sshtrail_gateway_refusals_total", reason=kind) == tries
