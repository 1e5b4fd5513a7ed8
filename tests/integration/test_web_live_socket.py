"""The live view's WebSocket refuses what it must, on SQLite and PostgreSQL: another
site's page, nobody signed in, a session outside the auditor's scope, each with its
close code; and what a signed-in browser sends on it reaches nothing (real Kafka).

``docs/security.md``: "same Origin required, same scope and sign-in as the pages" and
"the live view only reads"."""

from __future__ import annotations

import datetime as dt
import re
import uuid
from collections.abc import Iterator
from typing import Any

import msgspec
import pytest
from confluent_kafka import Consumer, TopicPartition
from sqlalchemy import Engine, select
from starlette.testclient import TestClient, WebSocketTestSession
from starlette.websockets import WebSocketDisconnect

from consumer.web.app import create_app
from sshtrail.passwords import hash_password
from sshtrail.settings import Settings
from sshtrail.tables import ACCESS_LOG, SESSIONS
from tests.support.consumers import create_topics
from tests.support.kafka import Broker
from tests.support.recordings import keyed, produce, recording

pytestmark = pytest.mark.integration

PASSWORD = "a-long-password"
HASH = hash_password(PASSWORD)
HOME = "http://127.0.0.1"  # the console's own origin under the test client


def live(session_id: uuid.UUID) -> str:
    # Absolute: the test client's WebSocket otherwise goes to host "testserver",
    # which the sign-in cookie (for 127.0.0.1) is not sent to.
    return f"ws://127.0.0.1/sessions/{session_id.hex}/live"


def settings_for(url: str, servers: str, topic: str) -> Settings:
    return msgspec.convert(
        {
            "database": {"url": url},
            "search": {"url": url},
            "kafka": {"bootstrap_servers": servers, "topic": topic},
            "control": {"topic": topic + ".control"},
            "auditors": [
                {"name": "ann", "password_hash": HASH, "role": "admin"},
                {"name": "tom", "password_hash": HASH, "targets": ["t1"]},
            ],
        },
        Settings,
    )


def store_active(engine: Engine, session_id: uuid.UUID, target: str) -> None:
    with engine.begin() as conn:
        conn.execute(
            SESSIONS.insert().values(
                id=session_id,
                operator="alice",
                target=target,
                started_at=dt.datetime.now(dt.UTC),
                status="active",
                request="shell",
                bytes_in=0,
                bytes_out=0,
                chunk_count=0,
                gaps=[],
            )
        )


@pytest.fixture
def topic(broker: Broker, topic_name: str) -> str:
    create_topics(broker.bootstrap_servers, topic_name, topic_name + ".control")
    return topic_name


@pytest.fixture
def client(store_engine: Engine, broker: Broker, topic: str) -> Iterator[TestClient]:
    url = str(store_engine.url.render_as_string(hide_password=False))
    app = create_app(settings_for(url, broker.bootstrap_servers, topic))
    with TestClient(app, base_url=HOME) as test_client:
        yield test_client


def sign_in(client: TestClient, name: str) -> None:
    page = client.get("/login")
    found = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert found is not None
    answer = client.post(
        "/login",
        data={"name": name, "password": PASSWORD, "csrf": found[1], "next": "/sessions"},
        follow_redirects=False,
    )
    assert answer.status_code == 303, answer.text


def refusal(client: TestClient, session_id: uuid.UUID, **headers: str) -> int | None:
    """The close code a live view of ``session_id`` is refused with; None if accepted."""
    try:
        with client.websocket_connect(
            live(session_id), headers=headers, subprotocols=["v2.asciicast"]
        ):
            return None  # accepted (leaving closes it)
    except WebSocketDisconnect as refused:  # closed before it was accepted
        return refused.code


def until_closed(socket: WebSocketTestSession, frames: list[Any]) -> int:
    """Read asciicast lines into ``frames`` until the console closes; its close code."""
    while True:
        try:
            text = socket.receive_text()
        except WebSocketDisconnect as closed:
            return closed.code
        frames.append(msgspec.json.decode(text))


def log_actions(engine: Engine, session_id: uuid.UUID) -> list[tuple[str, str | None]]:
    with engine.connect() as conn:
        rows = conn.execute(
            select(ACCESS_LOG.c.action, ACCESS_LOG.c.detail).where(
                ACCESS_LOG.c.session_id == session_id
            )
        )
        return [(row.action, row.detail) for row in rows]


def log_ends(servers: str, topics: list[str]) -> dict[str, int]:
    """The total log-end offset of each topic (all partitions)."""
    reader = Consumer({"bootstrap.servers": servers, "group.id": "unused-" + uuid.uuid4().hex})
    try:
        ends = {}
        for name in topics:
            meta = reader.list_topics(name, timeout=10).topics[name]
            ends[name] = sum(
                reader.get_watermark_offsets(TopicPartition(name, p), timeout=10)[1]
                for p in meta.partitions
            )
        return ends
    finally:
        reader.close()


def test_another_sites_page_nobody_signed_in_and_out_of_scope_are_refused(
    client: TestClient, store_engine: Engine
) -> None:
    inside, outside = uuid.uuid4(), uuid.uuid4()
    store_active(store_engine, inside, "t1")
    store_active(store_engine, outside, "t2")

    assert refusal(client, inside, origin=HOME) == 4403, "nobody signed in"
    sign_in(client, "tom")
    for foreign in ("http://evil.example", "http://127.0.0.1:8080", "https://127.0.0.1", "null"):
        assert refusal(client, inside, origin=foreign) == 4403, foreign
    assert log_actions(store_engine, inside) == [], "a refused origin looks at nothing"

    assert refusal(client, outside, origin=HOME) == 4404, "out of scope: as if there were none"
    assert log_actions(store_engine, outside) == [("denied", "out of scope")]
    assert refusal(client, uuid.uuid4(), origin=HOME) == 4404, "no such session"

    client.cookies.clear()
    assert refusal(client, inside, origin=HOME) == 4403, "signed out again"


def test_what_the_browser_sends_on_a_live_view_reaches_nothing(
    client: TestClient, store_engine: Engine, broker: Broker, topic: str
) -> None:
    session_id, chunks = recording(5, 60, text=True)
    store_active(store_engine, session_id, "t1")
    produce(broker.bootstrap_servers, topic, keyed(session_id, chunks))
    topics = [topic, topic + ".control"]
    before = log_ends(broker.bootstrap_servers, topics)

    sign_in(client, "tom")
    frames: list[Any] = []
    with client.websocket_connect(
        live(session_id), headers={"origin": HOME}, subprotocols=["v2.asciicast"]
    ) as socket:
        # A browser (or a script in one) answering the session: keys, a terminal's
        # reply to a query, binary, a large frame, text that looks like a request.
        socket.send_text("exit\r")
        socket.send_text("\x1b[?1;2c")
        socket.send_bytes(b"\x03\x04" * 1000)
        socket.send_text("x" * 200_000)
        socket.send_text('{"terminate": true, "reason": "from the page"}')
        code = until_closed(socket, frames)
    assert code == 1000, "the session's end closes the view, nothing else"

    header, *events = frames
    assert header["version"] == 2
    assert [e[1] for e in events].count("o") == 3, "every output chunk shown, in full"
    assert log_ends(broker.bootstrap_servers, topics) == before, "nothing was written anywhere"
    assert [action for action, _ in log_actions(store_engine, session_id)] == ["watch"]
