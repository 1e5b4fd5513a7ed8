"""Many interactive sessions at once through one gateway, typed as people type.

Echo times are taken once every session has logged in (steady state).
Used in two sizes: ``tests/e2e/test_load.py`` (small, in CI) and
``python -m bench.load`` (500 sessions for 2 minutes). Each session is an
asyncssh client with a PTY running ``bash --norc --noprofile`` on the target
through the gateway: it types a command key by key (timing each key's echo),
waits for its output, thinks, and types the next, until the time is up, then
exits. A few sessions go directly to the same sshd at the same time: their
echo times are the baseline the gateway's are compared with. A poller reads
the search index to time when each session's output becomes searchable.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import signal
import statistics
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import asyncssh
from sqlalchemy import select
from sqlalchemy.exc import OperationalError

from sshtrail import migrate, search
from sshtrail.db import make_engine
from tests.support.cli import Running
from tests.support.consumers import start_member, write_config
from tests.support.gateway import GatewayProcess, rss_kib
from tests.support.sshd import SshdTarget

PROMPT = "READY$ "


@dataclass
class Plan:
    sessions: int
    seconds: float
    direct: int = 5
    #: Keys per second while typing, and seconds of thought between commands.
    typing_rate: float = 8.0
    think: tuple[float, float] = (4.0, 12.0)
    #: Logins at once while the load ramps up.
    ramp: int = 25


@dataclass
class SessionLog:
    echoes: list[float] = field(default_factory=list)
    #: marker -> when the client saw that output line (time.time()).
    outputs: dict[str, float] = field(default_factory=dict)
    error: str | None = None
    exit_status: int | None = None


@dataclass
class LoadResult:
    gateway: list[SessionLog]
    direct: list[SessionLog]
    searchable: dict[str, float]  # marker -> when the index first had it
    rss_before_mib: float
    rss_peak_mib: float
    #: The members were started after the load: nothing says how soon lines were
    #: searchable, only whether they all became so.
    indexed_after: bool = False

    @property
    def dropped(self) -> list[str]:
        return [
            f"session {i}: {log.error or f'exit {log.exit_status}'}"
            for i, log in enumerate(self.gateway)
            if log.error or log.exit_status != 0
        ]

    def echo_p(self, which: str, q: float) -> float:
        logs = self.gateway if which == "gateway" else self.direct
        return percentile([e for log in logs for e in log.echoes], q)

    def delays(self) -> list[float]:
        """Output seen by the client -> searchable, per output line, in seconds."""
        seen = {m: t for log in self.gateway for m, t in log.outputs.items()}
        return [self.searchable[m] - t for m, t in seen.items() if m in self.searchable]

    def unsearchable(self) -> list[str]:
        return [m for log in self.gateway for m in log.outputs if m not in self.searchable]


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class _Terminal(asyncssh.SSHClientSession[str]):
    def __init__(self) -> None:
        self.buffer = ""
        self.changed = asyncio.Event()

    def data_received(self, data: str, datatype: asyncssh.DataType) -> None:
        self.buffer += data
        self.changed.set()

    async def wait_for(self, text: str, timeout: float = 60) -> float:
        """Wait until ``text`` was received; drop what came before and with it."""
        async with asyncio.timeout(timeout):
            while text not in self.buffer:
                self.changed.clear()
                await self.changed.wait()
        self.buffer = self.buffer.split(text, 1)[1]
        return time.perf_counter()


@dataclass(frozen=True)
class Endpoint:
    """Where a session logs in: the gateway (``OPERATOR@TARGET``) or the sshd itself."""

    port: int
    user: str
    key: Path


async def _session(
    endpoint: Endpoint,
    ramp: Ramp,
    log: SessionLog,
    name: str,
    *,
    plan: Plan,
    deadline: float,
    rng: random.Random,
) -> None:
    connecting = asyncssh.connect(
        "127.0.0.1",
        endpoint.port,
        username=endpoint.user,
        client_keys=[str(endpoint.key)],
        known_hosts=None,
    )
    try:
        async with _Ramped(ramp.logins, connecting) as conn:
            chan, term = await conn.create_session(
                _Terminal,
                "exec bash --norc --noprofile",
                term_type="xterm",
                term_size=(100, 30),
                encoding="utf-8",
            )
            assert isinstance(term, _Terminal)
            # A prompt to wait for, which the typed line itself also holds once.
            chan.write(f"PS1='{PROMPT}'\n")
            await term.wait_for(PROMPT)
            await term.wait_for(PROMPT)
            ramp.logged_in += 1
            n = 0
            while time.monotonic() < deadline:
                marker = f"{name}x{n}"
                for key in f"printf 'out-%s\\n' {marker}":
                    sent = time.perf_counter()
                    chan.write(key)
                    echoed = await term.wait_for(key) - sent
                    if ramp.done:  # steady state only: logins cost far more than keys
                        log.echoes.append(echoed)
                    pause = 1 / plan.typing_rate - (time.perf_counter() - sent)
                    await asyncio.sleep(max(0.0, pause))
                chan.write("\n")
                await term.wait_for(f"out-{marker}")
                log.outputs[f"out-{marker}"] = time.time()
                await term.wait_for(PROMPT)
                n += 1
                left = max(0.0, deadline - time.monotonic())
                await asyncio.sleep(min(rng.uniform(*plan.think), left))
            chan.write("exit 0\n")
            await chan.wait_closed()
            log.exit_status = chan.get_exit_status()
    except (OSError, asyncssh.Error, TimeoutError) as exc:
        log.error = f"{type(exc).__name__}: {exc}"


def run(
    plan: Plan,
    *,
    gateway: Endpoint,
    direct: Endpoint,
    search_url: str,
    gateway_pid: int,
    after_load: Callable[[], None] | None = None,
) -> LoadResult:
    """Run ``plan`` against a running gateway and sshd; index at ``search_url``. With
    ``after_load``, it is called when the load ends (it starts the members), and the
    lines are waited for from then on."""
    searchable: dict[str, float] = {}
    stop = threading.Event()
    poller = threading.Thread(target=_poll_index, args=(search_url, searchable, stop), daemon=True)
    poller.start()
    rss = [_rss_mib(gateway_pid)]
    try:
        gateway_logs, direct_logs = asyncio.run(_drive(plan, gateway, direct, gateway_pid, rss))
        if after_load is not None:
            after_load()
        wanted = {m for log in gateway_logs for m in log.outputs}
        end = time.monotonic() + (120 if after_load else 60)
        while not wanted <= searchable.keys() and time.monotonic() < end:
            time.sleep(0.2)
    finally:
        stop.set()
        poller.join(10)
    return LoadResult(
        gateway_logs, direct_logs, dict(searchable), rss[0], max(rss), after_load is not None
    )


async def _drive(
    plan: Plan, gateway: Endpoint, direct: Endpoint, gateway_pid: int, rss: list[float]
) -> tuple[list[SessionLog], list[SessionLog]]:
    rng = random.Random(7)
    ramp = Ramp(asyncio.Semaphore(plan.ramp), plan.sessions + plan.direct)
    deadline = time.monotonic() + plan.seconds
    gateway_logs = [SessionLog() for _ in range(plan.sessions)]
    direct_logs = [SessionLog() for _ in range(plan.direct)]
    tasks = []
    # The direct sessions log in first: the baseline must run alongside the whole load.
    for prefix, endpoint, logs in (("d", direct, direct_logs), ("g", gateway, gateway_logs)):
        tasks += [
            _session(
                endpoint,
                ramp,
                log,
                f"{prefix}{i}",
                plan=plan,
                deadline=deadline,
                rng=random.Random(rng.random()),
            )
            for i, log in enumerate(logs)
        ]

    async def sample() -> None:
        while time.monotonic() < deadline + 30:
            rss.append(_rss_mib(gateway_pid))
            await asyncio.sleep(1)

    sampler = asyncio.create_task(sample())
    await asyncio.gather(*tasks)
    sampler.cancel()
    return gateway_logs, direct_logs


@dataclass
class Ramp:
    """Logins in progress at most (``logins``), and whether all sessions are in."""

    logins: asyncio.Semaphore
    sessions: int
    logged_in: int = 0

    @property
    def done(self) -> bool:
        return self.logged_in >= self.sessions


class _Ramped:
    """``async with`` an asyncssh connect, at most ``ramp`` handshakes at once."""

    def __init__(
        self, ramp: asyncio.Semaphore, connecting: Awaitable[asyncssh.SSHClientConnection]
    ) -> None:
        self._ramp, self._connecting = ramp, connecting
        self._conn: asyncssh.SSHClientConnection | None = None

    async def __aenter__(self) -> asyncssh.SSHClientConnection:
        async with self._ramp:
            self._conn = await self._connecting
        assert self._conn is not None
        return self._conn

    async def __aexit__(self, *_: object) -> None:
        if self._conn is not None:
            self._conn.close()
            await self._conn.wait_closed()


def _poll_index(url: str, seen: dict[str, float], stop: threading.Event) -> None:
    engine = make_engine(url)
    last = 0
    try:
        while not stop.wait(0.1):
            try:
                with engine.connect() as conn:
                    rows = conn.execute(
                        select(search.DOCS.c.id, search.DOCS.c.text)
                        .where(search.DOCS.c.id > last)
                        .order_by(search.DOCS.c.id)
                    ).all()
            except OperationalError:  # the index member has not made its tables yet
                continue
            now = time.time()
            for doc_id, text in rows:
                last = max(last, doc_id)
                if text.startswith("out-") and text not in seen:
                    seen[text] = now
    finally:
        engine.dispose()


def _rss_mib(pid: int) -> float:
    kib = rss_kib(pid)
    return kib / 1024 if kib is not None else float("nan")


def summary(plan: Plan, result: LoadResult) -> dict[str, float]:
    """The figures, for a test to check and a benchmark to print."""
    delays = result.delays() if not result.indexed_after else []
    return {
        "sessions": plan.sessions,
        "seconds": plan.seconds,
        "dropped": len(result.dropped),
        "keystrokes": sum(len(log.echoes) for log in result.gateway),
        "echo_p50_ms": result.echo_p("gateway", 0.50) * 1000,
        "echo_p99_ms": result.echo_p("gateway", 0.99) * 1000,
        "direct_echo_p50_ms": result.echo_p("direct", 0.50) * 1000,
        "direct_echo_p99_ms": result.echo_p("direct", 0.99) * 1000,
        "echo_p99_overhead_ms": (result.echo_p("gateway", 0.99) - result.echo_p("direct", 0.99))
        * 1000,
        "searchable_p50_s": percentile(delays, 0.50) if delays else float("nan"),
        "searchable_p99_s": percentile(delays, 0.99) if delays else float("nan"),
        "output_lines": sum(len(log.outputs) for log in result.gateway),
        "gateway_rss_before_mib": result.rss_before_mib,
        "gateway_rss_peak_mib": result.rss_peak_mib,
        "gateway_kib_per_session": (result.rss_peak_mib - result.rss_before_mib)
        * 1024
        / max(1, plan.sessions),
        "mean_echoes_per_session": statistics.mean(len(log.echoes) for log in result.gateway),
    }


@dataclass
class Stack:
    """What a load runs against: a gateway in front of the sshd, a store and an index."""

    gateway: GatewayProcess
    sshd: SshdTarget
    search_url: str
    database_url: str
    members: list[Running]
    config: Path

    def start_members(self) -> None:
        self.members += [start_member(self.config, "store"), start_member(self.config, "index")]

    def run(self, plan: Plan) -> LoadResult:
        """The load, with the members reading the topic meanwhile -- or, if none runs
        yet, started when the load ends (the gateway then has the cores to itself)."""
        assert self.gateway.process is not None
        return run(
            plan,
            gateway=Endpoint(self.gateway.port, "alice:t1", self.gateway.operator_key),
            direct=Endpoint(self.sshd.port, self.sshd.user, self.sshd.client_key),
            search_url=self.search_url,
            gateway_pid=self.gateway.process.pid,
            after_load=self.start_members if not self.members else None,
        )


@contextlib.contextmanager
def stack(
    root: Path,
    servers: str,
    sshd: SshdTarget,
    sessions: int,
    gateway_settings: str = "",
    *,
    members_during_load: bool = True,
    workers: int = 1,
    idle_check_ms: int | None = None,
) -> Iterator[Stack]:
    """Gateway (limits raised for ``sessions``), a store and an index member, on SQLite
    (without ``members_during_load``, the members start when the load ends);
    ``idle_check_ms``: ``consumer.idle_check_ms`` of the gateway and the members (an
    embedded broker at ``servers`` needs it: it answers empty fetches at once)."""
    limits = f"max_sessions = {sessions + 100}\nmax_sessions_per_operator = {sessions + 100}\n"
    limits += gateway_settings
    gateway = GatewayProcess(
        root / "gw",
        servers,
        sshd,
        dead_letters=True,
        extra=limits,
        workers=workers,
        config_tail=""
        if idle_check_ms is None
        else f"[consumer]\nidle_check_ms = {idle_check_ms}\n",
    )
    gateway.start()
    database_url = f"sqlite:///{root / 'store.db'}"
    search_url = f"sqlite:///{root / 'search.db'}"
    migrate.upgrade(database_url)
    path = root / "consumers.toml"
    config = (
        write_config(path, servers, gateway.topic, database_url)
        if idle_check_ms is None
        else write_config(path, servers, gateway.topic, database_url, idle_check_ms=idle_check_ms)
    )
    with config.open("a") as extra:
        extra.write(f'[search]\nurl = "{search_url}"\n')
    built = Stack(gateway, sshd, search_url, database_url, [], config)
    if members_during_load:
        built.start_members()
    try:
        yield built
    finally:
        for member in built.members:
            member.stop(signal.SIGTERM)
        if gateway.process is not None and gateway.process.poll() is None:
            gateway.stop()
