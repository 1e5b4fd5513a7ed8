"""Nothing lost when a Kafka node fails under live sessions: three faults on a three-node cluster.

One stack for the module: three combined broker+controller nodes (replication
factor 3, ``min.insync.replicas=2``), the gateway in front of the test sshd
(idempotent ``acks=all`` producer, its topics replicated three times), one
store member writing to PostgreSQL -- production's database, so redelivered
chunks meet production's write path -- and one index member. Per fault,
operators type commands key by key into interactive bash sessions and read
their output the whole time: ``kill -9`` of the node leading a live session's
partition; a rolling restart of all three nodes under
``SSHTRAIL_TEST_KAFKA_FAULT_SESSIONS`` sessions (default 50); one node frozen
with SIGSTOP for 30 s. Afterwards: what each operator typed and saw equals
the replay from the store byte for byte, every chunk is in Kafka once and
stored once, every chain verifies, the index has each typed command once, and
both groups' lag is 0.

The gateway's longest publishing stall during each fault -- the largest age of
a chunk Kafka had not yet acknowledged, its ``/metrics`` read ten times a
second -- is printed (``-s``) and written to ``stall.json`` in the test's
folder, with the leader election as the cluster reported it and the
operators' echo times. They are figures for docs/performance.md, not asserted.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import signal
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncssh
import psycopg
import pytest
from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient
from sqlalchemy import Engine, select

from consumer.store import SESSIONS
from sshtrail import migrate, queries, search
from sshtrail.broker import free_port
from sshtrail.chain import Status, verify_chain
from sshtrail.db import make_engine
from sshtrail.events import Exec, Input, MaskedInput, Output, SealedInput
from sshtrail.kafka.config import partition_for
from sshtrail.wire import decode_chunk
from tests.support import postgres
from tests.support.cli import Running
from tests.support.consumers import (
    assert_store_equals_topic,
    group_lag,
    read_all,
    start_member,
    wait_for,
    write_config,
)
from tests.support.gateway import GatewayProcess
from tests.support.kafka import KafkaCluster, KafkaUnavailable
from tests.support.knobs import knob
from tests.support.metrics import scrape, value
from tests.support.services import unavailable
from tests.support.sshd import SshdTarget

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

#: Sessions during the rolling restart; the other faults take a quarter of them.
ROLLING_SESSIONS = int(knob("KAFKA_FAULT_SESSIONS", "50"))
FEW = max(4, ROLLING_SESSIONS // 4)
FREEZE_S = 30.0
PARTITIONS = 3
PROMPT = b"READY$ "
#: Each typed command prints this many lines, 100 ms apart.
LINES = 20
KEYS_PER_S = 8.0
#: The gateway masks typed bytes whose echo is slower than this; on two busy
#: cores an echo can take longer than production's 500 ms, and a masked key is
#: no Kafka fault. Generous, so every keystroke is compared as typed.
ECHO_WINDOW_MS = 5000
#: The operators' shell: a prompt to wait for, and ``p TOKEN N``, which prints N
#: lines 100 ms apart without starting a process (50 shells forking ``sleep``
#: ten times a second would take the cores the Kafka nodes need to restart).
RC = """PS1='READY$ '
HISTFILE=/dev/null
exec {pause}<> <(:)
p() {
  local i
  for ((i = 1; i <= $2; i++)); do echo "$1 $i $RANDOM"; read -rt 0.1 -u "$pause"; done
}
"""


@dataclass
class Stack:
    root: Path
    cluster: KafkaCluster
    gateway: GatewayProcess
    metrics_port: int
    rcfile: Path
    store: Running
    index: Running
    store_engine: Engine
    index_engine: Engine

    @property
    def servers(self) -> str:
        return self.cluster.bootstrap_servers

    @property
    def topic(self) -> str:
        return self.gateway.topic


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, sshd: SshdTarget) -> Iterator[Stack]:
    root = tmp_path_factory.mktemp("kafka-faults")
    with contextlib.ExitStack() as cleanup:  # what came up goes down, in reverse
        try:
            database_url = postgres.create_database()
        except psycopg.OperationalError as exc:
            unavailable(f"PostgreSQL at {postgres.ADMIN_URL} is not available: {exc}")
        cleanup.callback(postgres.drop_database, database_url)
        cluster = KafkaCluster(root / "kafka", nodes=3)
        cleanup.callback(cluster.stop, timeout=10)
        try:
            cluster.start()
        except KafkaUnavailable as exc:
            unavailable(f"Apache Kafka cannot start: {exc}")
        metrics_port = free_port()
        limit = ROLLING_SESSIONS + 50
        gateway = GatewayProcess(
            root / "gw",
            cluster.bootstrap_servers,
            sshd,
            dead_letters=True,
            replication_factor=3,
            echo_window_ms=ECHO_WINDOW_MS,
            extra=(
                f"max_sessions = {limit}\nmax_sessions_per_operator = {limit}\n"
                f"metrics_port = {metrics_port}\n"
            ),
        )
        cleanup.callback(stop, gateway)
        gateway.start()
        migrate.upgrade(database_url)
        index_url = f"sqlite:///{root / 'search.db'}"
        # The production timeouts, not write_config's short ones (made for killing
        # members): below the ~9 s a dead node takes to be fenced, a member whose
        # offset commit waits on that node's replica -- and its heartbeats behind
        # the commit -- times its own session out, and librdkafka then has the
        # static member fenced by itself (confluentinc/librdkafka#3437): fatal.
        config = write_config(
            root / "sshtrail.toml",
            cluster.bootstrap_servers,
            gateway.topic,
            database_url,
            index_url,
            session_timeout_ms=45_000,
            max_poll_interval_ms=300_000,
        )
        rcfile = root / "operator.bashrc"
        rcfile.write_text(RC)
        store = start_member(config, "store", "--instance-id", "kf-store").keep()
        cleanup.callback(stop, store)
        index = start_member(config, "index", "--instance-id", "kf-index").keep()
        cleanup.callback(stop, index)
        store_engine, index_engine = make_engine(database_url), make_engine(index_url)
        cleanup.callback(store_engine.dispose)
        cleanup.callback(index_engine.dispose)
        yield Stack(
            root,
            cluster,
            gateway,
            metrics_port,
            rcfile,
            store,
            index,
            store_engine,
            index_engine,
        )


def stop(process: GatewayProcess | Running) -> None:
    """SIGTERM, if it still runs."""
    if isinstance(process, GatewayProcess):
        if process.process is not None and process.process.poll() is None:
            process.stop()
    elif process.process.poll() is None:
        process.stop(signal.SIGTERM)


# -- operators -------------------------------------------------------------


@dataclass
class Operator:
    """One interactive session: what its operator typed and saw, as bytes."""

    mark: str
    exit_status: int
    typed: bytearray = field(default_factory=bytearray)
    seen: bytes = b""
    commands: list[str] = field(default_factory=list)
    at_prompt: bool = False
    echoes: list[float] = field(default_factory=list)
    returned: int | None = None
    error: str | None = None


class Screen(asyncssh.SSHClientSession[bytes]):
    """Everything the terminal received, and a read position for waiting on it."""

    def __init__(self) -> None:
        self.received = bytearray()
        self._read = 0
        self._changed = asyncio.Event()

    def data_received(self, data: bytes, datatype: asyncssh.DataType) -> None:
        self.received += data
        self._changed.set()

    async def wait_for(self, text: bytes, timeout: float = 90) -> None:
        """Wait until ``text`` arrives after the read position; move past it."""
        async with asyncio.timeout(timeout):
            while (at := self.received.find(text, self._read)) < 0:
                self._changed.clear()
                await self._changed.wait()
        self._read = at + len(text)


class Load:
    """``count`` operators typing through the gateway until :meth:`finish`, in one thread."""

    def __init__(self, stack: Stack, fault: str, count: int) -> None:
        self.stack = stack
        self.operators = [
            Operator(f"{fault}{n}-{uuid.uuid4().hex[:4]}", n % 4) for n in range(count)
        ]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._all()), daemon=True)

    def __enter__(self) -> Load:
        self._thread.start()
        try:
            wait_for(
                lambda: all(op.at_prompt or op.error for op in self.operators),
                timeout=120,
                what="every operator at a prompt",
            )
        except AssertionError:
            self.finish()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.finish()

    def finish(self) -> list[Operator]:
        """Let each operator finish the command at hand and exit."""
        self._stop.set()
        self._thread.join(180)
        assert not self._thread.is_alive(), "the operators did not finish within 180 s"
        return self.operators

    async def _all(self) -> None:
        logins = asyncio.Semaphore(10)
        await asyncio.gather(*(self._operate(op, logins) for op in self.operators))

    async def _operate(self, op: Operator, logins: asyncio.Semaphore) -> None:
        command = f"MARK={op.mark} exec bash --rcfile {self.stack.rcfile} -i"
        try:
            async with logins:
                conn = await self.stack.gateway.connect()
            try:
                chan, screen = await conn.create_session(
                    Screen, command, term_type="xterm", term_size=(100, 30), encoding=None
                )
                assert isinstance(screen, Screen)
                await screen.wait_for(PROMPT)
                op.at_prompt = True
                while not self._stop.is_set():
                    token = f"{op.mark}r{len(op.commands)}"
                    line = f"p {token} {LINES}"
                    await self._type(chan, screen, op, line)
                    await screen.wait_for(f"{token} {LINES} ".encode())  # its last line
                    await screen.wait_for(PROMPT)
                    op.commands.append(line)
                await self._type(chan, screen, op, f"exit {op.exit_status}")
                async with asyncio.timeout(60):
                    await chan.wait_closed()
                op.returned = chan.get_exit_status()
                op.seen = bytes(screen.received)
            finally:
                conn.close()
                await conn.wait_closed()
        except (OSError, asyncssh.Error, TimeoutError) as exc:
            op.error = f"{type(exc).__name__}: {exc}"

    async def _type(
        self, chan: asyncssh.SSHClientChannel[bytes], screen: Screen, op: Operator, line: str
    ) -> None:
        """Type ``line`` key by key, each after the echo of the one before, then Enter."""
        for key in line.encode():
            sent = time.monotonic()
            chan.write(bytes([key]))
            op.typed.append(key)
            await screen.wait_for(bytes([key]))
            op.echoes.append(time.monotonic() - sent)
            await asyncio.sleep(max(0.0, 1 / KEYS_PER_S - (time.monotonic() - sent)))
        chan.write(b"\r")
        op.typed += b"\r"


# -- the cluster and the gateway, watched -------------------------------------


def admin(stack: Stack) -> AdminClient:
    return AdminClient({"bootstrap.servers": stack.servers, "log_level": 2})


def wait_in_sync(stack: Stack, timeout: float = 90) -> float:
    """Wait until every node is in the in-sync replicas of every partition of every
    topic; returns the seconds it took."""
    started, client = time.monotonic(), admin(stack)

    def whole() -> bool:
        try:
            metadata = client.list_topics(timeout=5)
        except KafkaException:
            return False
        return len(metadata.brokers) == len(stack.cluster.nodes) and all(
            meta.leader >= 0 and set(meta.isrs) == set(meta.replicas)
            for topic in metadata.topics.values()
            for meta in topic.partitions.values()
        )

    wait_for(whole, timeout=timeout, what="every node back in every partition's ISR", every=0.5)
    return time.monotonic() - started


def leader(client: AdminClient, topic: str, partition: int) -> int:
    try:
        found: int = client.list_topics(topic, timeout=5).topics[topic].partitions[partition].leader
    except KafkaException:
        return -1
    return found


def live_partition(stack: Stack, load: Load) -> tuple[uuid.UUID, int, int]:
    """A session of ``load`` still open, its partition, and that partition's leader."""
    marks = {op.mark for op in load.operators if op.error is None}
    found: list[uuid.UUID] = []

    def one_open() -> bool:
        with stack.store_engine.connect() as conn:
            rows = conn.execute(
                select(SESSIONS.c.id, SESSIONS.c.command).where(SESSIONS.c.status == "active")
            ).all()
        found[:] = [sid for sid, command in rows if mark_of(command) in marks]
        return bool(found)

    wait_for(one_open, timeout=60, what="a live session in the store")
    partition = partition_for(str(found[0]).encode(), PARTITIONS)
    return found[0], partition, stack.cluster.leader_of(stack.topic, partition)


class StallMeter:
    """Reads the gateway's ``/metrics`` ten times a second while a fault runs."""

    def __init__(self, port: int) -> None:
        self._port = port
        self._done = threading.Event()
        self.samples: list[tuple[float, float, float, float]] = []
        self.fault_at = 0.0
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._done.wait(0.1):
            with contextlib.suppress(OSError):
                found = scrape(self._port)
                self.samples.append(
                    (
                        time.monotonic(),
                        value(found, "sshtrail_gateway_spool_oldest_pending_seconds"),
                        value(found, "sshtrail_gateway_publish_errors_total"),
                        value(found, "sshtrail_gateway_producer_replacements_total"),
                    )
                )

    def __enter__(self) -> StallMeter:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self._thread.join(10)

    def figures(self) -> dict[str, Any]:
        before = [age for t, age, *_ in self.samples if t < self.fault_at]
        during = [age for t, age, *_ in self.samples if t >= self.fault_at]
        first, last = self.samples[0], self.samples[-1]
        return {
            "longest_stall_s": round(max(during, default=0.0), 2),
            "longest_stall_before_the_fault_s": round(max(before, default=0.0), 2),
            "publish_errors": last[2] - first[2],
            "producer_replacements": last[3] - first[3],
        }


def report(fault: str, folder: Path, figures: dict[str, Any], operators: list[Operator]) -> None:
    echoes = sorted(e for op in operators for e in op.echoes)
    figures |= {
        "sessions": len(operators),
        "keystrokes": len(echoes),
        "echo_p99_ms": round(echoes[int(0.99 * (len(echoes) - 1))] * 1000, 1),
        "echo_max_ms": round(echoes[-1] * 1000, 1),
    }
    print(
        f"\n[kafka fault: {fault}] gateway's longest publishing stall "
        f"{figures['longest_stall_s']:.2f} s -- {json.dumps(figures)}"
    )
    (folder / "stall.json").write_text(json.dumps({"fault": fault, **figures}, indent=2) + "\n")


# -- what must hold after each fault -------------------------------------------


def mark_of(command: str | None) -> str | None:
    found = re.match(r"MARK=(\S+) ", command or "")
    return found.group(1) if found else None


def settle(stack: Stack, operators: list[Operator]) -> dict[str, uuid.UUID]:
    """Wait until each operator's session is stored and closed and no group lags."""
    marks = {op.mark for op in operators}
    ids: dict[str, uuid.UUID] = {}

    def closed() -> bool:
        with stack.store_engine.connect() as conn:
            rows = conn.execute(select(SESSIONS.c.id, SESSIONS.c.command, SESSIONS.c.status))
            states = {mark_of(command): (sid, status) for sid, command, status in rows}
        ids.update({m: states[m][0] for m in marks if m in states})
        return all(states.get(m, (None, ""))[1] == "closed" for m in marks)

    try:
        wait_for(closed, timeout=180, what="every session stored and closed", every=0.5)
    except AssertionError as exc:
        assert_members_alive(stack)
        (stack.root / "store.stderr").write_text(stack.store.stderr)
        tail = "".join(stack.gateway.output[-15:])
        raise AssertionError(
            f"{exc}\ngateway:\n{tail}\nstore:\n{stack.store.stderr[-2000:]}"
        ) from None
    for group in (f"{stack.topic}-store", f"{stack.topic}-index"):
        wait_for(
            lambda g=group: sum(group_lag(stack.servers, g, stack.topic).values()) == 0,  # type: ignore[misc]
            timeout=120,
            what=f"{group} to catch up",
            every=0.5,
        )
    return ids


def assert_members_alive(stack: Stack) -> None:
    for name, member in (("store", stack.store), ("index", stack.index)):
        assert member.process.poll() is None, (
            f"the {name} member ended (status {member.process.returncode}): {member.stderr[-1500:]}"
        )


def assert_nothing_lost(stack: Stack, operators: list[Operator]) -> None:
    assert_members_alive(stack)
    for op in operators:
        assert op.error is None, f"{op.mark}: {op.error}"
        assert op.returned == op.exit_status, op.mark
    ids = settle(stack, operators)
    keys = {stack.gateway.signing_key}
    with stack.store_engine.connect() as conn, stack.index_engine.connect() as index:
        for op in operators:
            stored = queries.stored_chunks(conn, ids[op.mark])
            events = [e for _, data in stored for e in decode_chunk(data).events]
            assert verify_chain(stored, keys).status is Status.OK, op.mark
            assert [e.command for e in events if isinstance(e, Exec)] == [
                f"MARK={op.mark} exec bash --rcfile {stack.rcfile} -i".encode()
            ]
            typed = b"".join(e.data for e in events if isinstance(e, Input))
            assert typed == bytes(op.typed), f"{op.mark}: the replay's keystrokes differ"
            assert not [e for e in events if isinstance(e, MaskedInput | SealedInput)], op.mark
            output = b"".join(e.data for e in events if isinstance(e, Output))
            assert output == op.seen, f"{op.mark}: the replay differs from the terminal"
            hits = search.search(
                index, search.Query(op.mark, kind="command", session_id=ids[op.mark], limit=1000)
            )
            commands = Counter(h.text for h in hits if h.text.startswith("p "))
            assert commands == Counter(op.commands), f"{op.mark}: indexed commands differ"
    # Once in Kafka (the idempotent producer: no chunk sent twice) ...
    sessions = set(ids.values())
    on_topic = Counter(
        (chunk.session_id, chunk.seq)
        for _p, _o, message in read_all(stack.servers, stack.topic, timeout=60)
        if (chunk := decode_chunk(message.value())).session_id in sessions  # type: ignore[attr-defined]
    )
    twice = [key for key, n in on_topic.items() if n > 1]
    assert not twice, f"{len(twice)} chunks are in Kafka more than once: {twice[:5]}"
    # ... and stored once, byte for byte, with all Kafka has.
    assert_store_equals_topic(stack.store_engine, stack.servers, stack.topic, sessions=sessions)


# -- the faults ------------------------------------------------------------------


def restored(stack: Stack, node_id: int) -> Callable[[], None]:
    """Put a node back however a fault left it (for a test that fails midway)."""

    def put_back() -> None:
        node = stack.cluster.node(node_id)
        if node.process is not None and node.running:
            stack.cluster.thaw_node(node_id)
        else:
            stack.cluster.start_node(node_id)

    return put_back


def test_kill_9_of_the_leader_of_a_live_sessions_partition(stack: Stack, tmp_path: Path) -> None:
    with StallMeter(stack.metrics_port) as meter, Load(stack, "kill", FEW) as load:
        session_id, partition, victim = live_partition(stack, load)
        client = admin(stack)
        meter.fault_at = time.monotonic()
        try:
            stack.cluster.kill_node(victim)
            wait_for(
                lambda: leader(client, stack.topic, partition) not in (victim, -1),
                timeout=60,
                what=f"a new leader for partition {partition}",
                every=0.2,
            )
            elected = time.monotonic() - meter.fault_at
        finally:
            restored(stack, victim)()
        rejoined = wait_in_sync(stack)
        time.sleep(3)  # a round of typing with the cluster whole again
        operators = load.finish()
    figures: dict[str, Any] = meter.figures() | {
        "killed_node": victim,
        "partition": partition,
        "session": str(session_id),
        "leader_elected_after_s": round(elected, 2),
        "back_in_sync_after_restart_s": round(rejoined, 2),
    }
    report("kill -9 of a partition leader", tmp_path, figures, operators)
    assert_nothing_lost(stack, operators)


def test_rolling_restart_of_all_three_nodes(stack: Stack, tmp_path: Path) -> None:
    per_node: dict[int, dict[str, float]] = {}
    with StallMeter(stack.metrics_port) as meter, Load(stack, "roll", ROLLING_SESSIONS) as load:
        meter.fault_at = time.monotonic()
        for node in stack.cluster.nodes:
            began = time.monotonic()
            try:
                stack.cluster.stop_node(node.node_id)  # SIGTERM: leadership moves first
                stopped = time.monotonic()
            finally:
                restored(stack, node.node_id)()
            started = time.monotonic()
            wait_in_sync(stack)
            per_node[node.node_id] = {
                "stop_s": round(stopped - began, 1),
                "start_s": round(started - stopped, 1),
                "in_sync_s": round(time.monotonic() - started, 1),
            }
        time.sleep(3)
        operators = load.finish()
    figures = meter.figures() | {"per_node": per_node}
    report("rolling restart", tmp_path, figures, operators)
    assert_nothing_lost(stack, operators)


def test_one_node_frozen_for_30_s(stack: Stack, tmp_path: Path) -> None:
    with StallMeter(stack.metrics_port) as meter, Load(stack, "freeze", FEW) as load:
        session_id, partition, frozen = live_partition(stack, load)
        client = admin(stack)
        meter.fault_at = time.monotonic()
        try:
            stack.cluster.freeze_node(frozen)
            elected = None
            with contextlib.suppress(AssertionError):
                wait_for(
                    lambda: leader(client, stack.topic, partition) not in (frozen, -1),
                    timeout=FREEZE_S,
                    what="a new leader",
                    every=0.2,
                )
                elected = round(time.monotonic() - meter.fault_at, 2)
            time.sleep(max(0.0, meter.fault_at + FREEZE_S - time.monotonic()))
        finally:
            restored(stack, frozen)()
        rejoined = wait_in_sync(stack)
        time.sleep(3)
        operators = load.finish()
    figures: dict[str, Any] = meter.figures() | {
        "frozen_node": frozen,
        "partition": partition,
        "session": str(session_id),
        "leader_elected_after_s": elected,
        "back_in_sync_after_thaw_s": round(rejoined, 2),
    }
    report(f"one node frozen {FREEZE_S:.0f} s", tmp_path, figures, operators)
    assert_nothing_lost(stack, operators)
