"""The web console served by uvicorn on a real socket, as ``sshtrail web`` serves it:
sign-ins sent all at once against the failure limits, from several loopback addresses,
and a live view (real Kafka, a real WebSocket client) that ends with its sign-in."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import re
import struct
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest
import uvicorn
import websocket
from confluent_kafka import Producer
from sqlalchemy import select
from starlette.applications import Starlette

from consumer.web import signins
from consumer.web.app import LIVE_RECHECK_S, create_app
from consumer.web.console import SESSION_COOKIE
from consumer.web.live import SIGNED_OUT
from sshtrail import events as ev
from sshtrail import migrate
from sshtrail.broker import free_port
from sshtrail.chain import ChainWriter
from sshtrail.db import make_engine
from sshtrail.ids import uuid7
from sshtrail.passwords import hash_password
from sshtrail.settings import Settings
from sshtrail.tables import ACCESS_LOG, SESSIONS
from tests.support.consumers import create_topics
from tests.support.kafka import Broker
from tests.support.recordings import SIGNER
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration

#: Where the consoles of these tests make their control key (it signs the access
#: log's heads), not ./sshtrail-data of the folder the tests run in.
STATE_DIR = tempfile.mkdtemp(prefix="sshtrail-web-test-")

PASSWORD = "a-long-password"
HASH = hash_password(PASSWORD)
LIMIT = 5
AT_ONCE = 30


def settings_for(store_url: str, servers: str = "", topic: str = "sshtrail.sessions") -> Settings:
    kafka = {"bootstrap_servers": servers, "topic": topic} if servers else {}
    return msgspec.convert(
        {
            "kafka": kafka,
            "state_dir": STATE_DIR,
            "database": {"url": store_url},
            "search": {"url": store_url},
            "web": {"login_failures": LIMIT},
            "auditors": [
                {"name": "ann", "password_hash": HASH, "role": "admin"},
                {"name": "tom", "password_hash": HASH},
                {"name": "una", "password_hash": HASH},
            ],
        },
        Settings,
        strict=False,
    )


@contextlib.contextmanager
def served(app: Starlette) -> Iterator[str]:
    """``app`` under uvicorn on 127.0.0.1 with ``sshtrail web``'s settings; its base URL."""
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host="127.0.0.1",
            port=port,
            proxy_headers=False,
            server_header=False,
            log_level="warning",
            access_log=False,
            timeout_graceful_shutdown=5,
        )
    )
    thread = threading.Thread(target=server.run, name="console", daemon=True)
    thread.start()
    try:
        wait_for(lambda: server.started, what="the console listening", timeout=30)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=15)


def client_from(base_url: str, address: str) -> httpx.Client:
    """A client whose connections come from ``address`` (any 127.x.y.z is this machine)."""
    transport = httpx.HTTPTransport(local_address=address)
    return httpx.Client(base_url=base_url, transport=transport, timeout=60)


def form_token(client: httpx.Client) -> str:
    page = client.get("/login")
    found = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert found is not None
    return found[1]


def all_at_once(base_url: str, tries: list[tuple[str, str, str]]) -> list[int]:
    """Send every (address, name, password) sign-in at the same moment; their statuses."""
    clients = [client_from(base_url, address) for address, _, _ in tries]
    tokens = [form_token(client) for client in clients]
    go = threading.Barrier(len(tries))

    def attempt(n: int) -> int:
        _, name, password = tries[n]
        go.wait(timeout=30)
        form = {"name": name, "password": password, "csrf": tokens[n], "next": "/sessions"}
        return clients[n].post("/login", data=form).status_code

    try:
        with ThreadPoolExecutor(len(tries)) as pool:
            return list(pool.map(attempt, range(len(tries))))
    finally:
        for client in clients:
            client.close()


def sign_in(base_url: str, address: str, name: str, password: str = PASSWORD) -> int:
    with client_from(base_url, address) as client:
        form = {"name": name, "password": password, "csrf": form_token(client)}
        return client.post("/login", data=form).status_code


def test_sign_ins_sent_at_once_are_limited_per_address_and_per_account(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    migrate.upgrade(url)
    with served(create_app(settings_for(url))) as base:
        # One account from one address: only the limit's worth is checked.
        one = all_at_once(base, [("127.0.0.1", "tom", "wrong")] * AT_ONCE)
        assert sorted(one) == [401] * LIMIT + [429] * (AT_ONCE - LIMIT)
        # Both limits now hold, each on its own: tom from elsewhere, and 127.0.0.1 for
        # anyone, are refused even with the right password; ann from elsewhere is not.
        assert sign_in(base, "127.0.0.2", "tom") == 429
        assert sign_in(base, "127.0.0.1", "ann") == 429
        assert sign_in(base, "127.0.0.2", "ann") == 303
        # One address, a different name each time: the address's limit.
        per_address = all_at_once(base, [("127.0.0.3", f"x{n}", "wrong") for n in range(AT_ONCE)])
        assert sorted(per_address) == [401] * LIMIT + [429] * (AT_ONCE - LIMIT)
        # One account, a different address each time: the account's limit.
        per_account = all_at_once(
            base, [(f"127.0.1.{n + 1}", "una", "wrong") for n in range(AT_ONCE)]
        )
        assert sorted(per_account) == [401] * LIMIT + [429] * (AT_ONCE - LIMIT)
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            actions = list(conn.execute(select(ACCESS_LOG.c.action)).scalars())
    finally:
        engine.dispose()
    assert actions.count("login-failed") == 3 * LIMIT  # every check made is logged
    assert actions.count("login") == 1


class Typing:
    """An active session on the sessions topic whose output keeps coming: a numbered
    frame every 50 ms, each remembered with when it was produced."""

    def __init__(self, servers: str, topic: str) -> None:
        self.session_id = uuid7()
        self.produced: dict[int, float] = {}
        self._writer = ChainWriter(self.session_id, SIGNER)
        self._producer: Producer | None = Producer({"bootstrap.servers": servers, "linger.ms": 0})
        self._topic = topic
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="typing", daemon=True)
        start = ev.Start(
            0, "alice", "127.0.0.1:50000", "t1", "127.0.0.1", 22, "root", "gw-test", "xterm",
            80, 24, time.time_ns(),
        )  # fmt: skip
        self._send([start, ev.Exec(0, "shell", b"")])

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        self._producer = None  # no reconnecting to the broker once the run stops it

    def _run(self) -> None:
        n = 0
        while not self._stop.wait(0.05):
            n += 1
            self._send([ev.Output(n * 50_000_000, f"frame-{n}\r\n".encode())])
            self.produced[n] = time.monotonic()

    def _send(self, events: list[ev.Event]) -> None:
        key = str(self.session_id).encode()
        assert self._producer is not None
        self._producer.produce(self._topic, self._writer.encode(events), key)
        self._producer.flush(10)


def active_session(url: str, broker: Broker, topic_name: str) -> Typing:
    """A migrated store at ``url`` with an active session of alice on t1 whose frames
    :class:`Typing` publishes (started) to a one-partition ``topic_name``."""
    migrate.upgrade(url)
    create_topics(broker.bootstrap_servers, topic_name, partitions=1)
    typing = Typing(broker.bootstrap_servers, topic_name)
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.execute(
            SESSIONS.insert().values(
                id=typing.session_id,
                operator="alice",
                target="t1",
                status="active",
                started_at=dt.datetime.now(dt.UTC),
                request="shell",
                command="",
                bytes_in=0,
                bytes_out=0,
                chunk_count=0,
                gaps=[],
            )
        )
    engine.dispose()
    typing.start()
    return typing


def watched(base: str, client: httpx.Client, typing: Typing) -> Watching:
    """Ann's live view of ``typing``'s session, once its frames stream."""
    view = websocket.create_connection(
        base.replace("http", "ws") + f"/sessions/{typing.session_id.hex}/live",
        cookie=f"{SESSION_COOKIE}={client.cookies[SESSION_COOKIE]}",
        subprotocols=["v2.asciicast"],
        timeout=1,
    )
    watching = Watching(view)
    wait_for(lambda: len(watching.frames) >= 5, what="frames streaming", timeout=30)
    return watching


def test_signing_out_closes_the_live_view_of_that_sign_in(
    tmp_path: Path, broker: Broker, topic_name: str
) -> None:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    typing = active_session(url, broker, topic_name)
    app = create_app(settings_for(url, broker.bootstrap_servers, topic_name))
    try:
        with served(app) as base, client_from(base, "127.0.0.1") as client:
            form = {"name": "ann", "password": PASSWORD, "csrf": form_token(client)}
            assert client.post("/login", data=form).status_code == 303
            page = client.get("/sessions")
            csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
            assert csrf is not None
            watching = watched(base, client, typing)
            assert client.post("/logout", data={"csrf": csrf[1]}).status_code == 303
            signed_out = time.monotonic()
            watching.thread.join(timeout=10)
            assert watching.closed is not None, "the live view is still open after 10 s"
            code, reason, when = watching.closed
            assert (code, reason) == (SIGNED_OUT, "signed out")
            assert when - signed_out < 2.0
            late = [n for n, _ in watching.frames if typing.produced.get(n, 0) > signed_out]
            assert late == [], f"frames produced after signing out were sent: {late}"
    finally:
        typing.stop()


def test_a_revocation_from_elsewhere_closes_the_live_view(
    tmp_path: Path, broker: Broker, topic_name: str
) -> None:
    """Revoked in the store by another process (``sshtrail web revoke``), not through
    this console: its live view sees it at its next check of the sign-in."""
    url = f"sqlite:///{tmp_path / 'store.db'}"
    typing = active_session(url, broker, topic_name)
    app = create_app(settings_for(url, broker.bootstrap_servers, topic_name))
    try:
        with served(app) as base, client_from(base, "127.0.0.1") as client:
            form = {"name": "ann", "password": PASSWORD, "csrf": form_token(client)}
            assert client.post("/login", data=form).status_code == 303
            watching = watched(base, client, typing)
            elsewhere = make_engine(url)
            with elsewhere.begin() as conn:
                ended = signins.revoke(
                    conn, prefix=None, user="ann", by="root", reason="test", now=signins.utc_now()
                )
            elsewhere.dispose()
            assert [auditor for _, auditor in ended] == ["ann"]
            revoked = time.monotonic()
            watching.thread.join(timeout=LIVE_RECHECK_S + 5)
            assert watching.closed is not None, "the live view outlived its revocation"
            code, reason, when = watching.closed
            assert (code, reason) == (SIGNED_OUT, "signed out")
            assert when - revoked < LIVE_RECHECK_S + 2
            assert client.get("/sessions", follow_redirects=False).status_code == 303
    finally:
        typing.stop()


class Watching:
    """Reads a live view's WebSocket until it is closed: the frame numbers received, and
    the close (code, reason, when), or None while it stays open (20 s at most)."""

    def __init__(self, view: websocket.WebSocket) -> None:
        self.frames: list[tuple[int, float]] = []
        self.closed: tuple[int, str, float] | None = None
        self._view = view
        self.thread = threading.Thread(target=self._run, name="watching", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        deadline = time.monotonic() + 20
        try:
            while time.monotonic() < deadline:
                try:
                    opcode, data = self._view.recv_data(control_frame=True)
                except websocket.WebSocketTimeoutException:
                    continue
                if opcode == websocket.ABNF.OPCODE_CLOSE:
                    (code,) = struct.unpack("!H", data[:2])
                    self.closed = (code, data[2:].decode(), time.monotonic())
                    return
                line: Any = json.loads(data)
                found = re.search(r"frame-(\d+)", line[2]) if isinstance(line, list) else None
                if found:
                    self.frames.append((int(found[1]), time.monotonic()))
        except websocket.WebSocketConnectionClosedException:
            self.closed = (-1, "dropped without a close frame", time.monotonic())
        finally:
            self._view.close(timeout=1)
