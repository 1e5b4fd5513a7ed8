"""The console's Active sessions page and the JSON it polls against a real store (SQLite
and PostgreSQL): only open sessions, only those in the auditor's scope, the row's
fields, Terminate offered only with the right, the page in the access log, and bad
parameters answered with 400. The page in a browser, with real ssh sessions through a
gateway, is tests/e2e/test_active_page.py."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator

import msgspec
import pytest
from sqlalchemy import Engine, select
from starlette.testclient import TestClient

from consumer.web.app import create_app
from sshtrail.settings import Settings
from sshtrail.tables import ACCESS_LOG, SESSIONS
from tests.integration.test_web_http import HASH, STATE_DIR, sign_in
from tests.support.kafka import KafkaCluster

pytestmark = pytest.mark.integration

NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)
HOSTILE = "<img src=x onerror=alert('op')>\x1b[2J"


@pytest.fixture
def client(store_engine: Engine, broker: KafkaCluster) -> Iterator[TestClient]:
    """A console whose ann (admin) may terminate, tom sees target t1, and bea may not
    terminate though she sees everything of operators ``b*``."""
    url = str(store_engine.url.render_as_string(hide_password=False))
    settings = msgspec.convert(
        {
            "state_dir": STATE_DIR,
            "kafka": {"bootstrap_servers": broker.bootstrap_servers},
            "database": {"url": url},
            "search": {"url": url},
            "auditors": [
                {"name": "ann", "password_hash": HASH, "role": "admin", "terminate": True},
                {"name": "tom", "password_hash": HASH, "targets": ["t1"], "terminate": True},
                {"name": "bea", "password_hash": HASH, "operators": ["b*"]},
            ],
        },
        Settings,
    )
    with TestClient(create_app(settings), base_url="http://127.0.0.1") as test_client:
        yield test_client


@pytest.fixture
def sessions(store_engine: Engine) -> dict[str, uuid.UUID]:
    """Open sessions on t1 (alice, a hostile operator), t2 (bob) and a closed one on t1."""
    made = {name: uuid.uuid4() for name in ("alice-t1", "hostile-t1", "bob-t2", "closed-t1")}
    rows = {
        "alice-t1": ("alice", "t1", "active", 40, "shell", None, "sudo"),
        "hostile-t1": (HOSTILE, "t1", "active", 20, "exec", "uptime", None),
        "bob-t2": ("bob", "t2", "active", 10, "subsystem", "sftp", None),
        "closed-t1": ("alice", "t1", "closed", 5, "shell", None, None),
    }
    with store_engine.begin() as conn:
        for name, (operator, target, status, ago, request, command, flags) in rows.items():
            conn.execute(
                SESSIONS.insert().values(
                    id=made[name],
                    operator=operator,
                    target=target,
                    started_at=NOW - dt.timedelta(minutes=ago),
                    ended_at=NOW if status == "closed" else None,
                    status=status,
                    request=request,
                    command=command,
                    bytes_in=1234,
                    bytes_out=56789,
                    chunk_count=3,
                    gaps=[],
                    flags=flags,
                )
            )
    return made


def open_now(client: TestClient, query: str = "") -> list[dict[str, object]]:
    answer = client.get("/active.json" + query)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == "application/json"
    assert answer.headers["cache-control"] == "no-store"
    listed: list[dict[str, object]] = answer.json()["sessions"]
    return listed


@pytest.mark.parametrize("database_url", ["sqlite", "postgresql"], indirect=True)
def test_only_open_sessions_in_scope_newest_first(
    client: TestClient, sessions: dict[str, uuid.UUID]
) -> None:
    assert sign_in(client, "ann").status_code == 303
    listed = open_now(client)
    assert [row["id"] for row in listed] == [
        sessions[name].hex for name in ("bob-t2", "hostile-t1", "alice-t1")
    ]
    bob = listed[0]
    assert bob["operator"] == "bob"
    assert bob["target"] == "t2"
    assert bob["kind"] == "subsystem: sftp"
    assert bob["bytes_in"] == 1234
    assert bob["bytes_out"] == 56789
    assert 9 * 60 <= float(str(bob["duration_s"])) < 60 * 60
    assert bob["watch"] == f"/sessions/{sessions['bob-t2'].hex}"
    assert bob["terminate"] == f"/sessions/{sessions['bob-t2'].hex}/terminate"
    assert listed[2]["flags"] == ["sudo"]
    hostile = listed[1]
    assert hostile["operator"] == "<img src=x onerror=alert('op')>\\e[2J"  # made visible
    assert [r["id"] for r in open_now(client, "?target=t2")] == [sessions["bob-t2"].hex]
    assert next(r["id"] for r in open_now(client, "?sort=operator")) == sessions["hostile-t1"].hex

    assert sign_in(client, "tom").status_code == 303  # target t1 only
    assert [r["id"] for r in open_now(client)] == [
        sessions["hostile-t1"].hex,
        sessions["alice-t1"].hex,
    ]
    assert open_now(client, "?target=t2") == []
    assert open_now(client, "?operator=bob") == []

    assert sign_in(client, "bea").status_code == 303  # operators b*, no terminate
    answer = client.get("/active.json").json()
    assert [r["id"] for r in answer["sessions"]] == [sessions["bob-t2"].hex]
    assert answer["may_terminate"] is False
    assert answer["sessions"][0]["terminate"] is None
    page = client.get("/active")
    assert "Terminate ends it" not in page.text


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_the_page_is_logged_and_its_polls_are_not(
    client: TestClient, sessions: dict[str, uuid.UUID], store_engine: Engine
) -> None:
    assert sign_in(client, "tom").status_code == 303
    page = client.get("/active?operator=alice&sort=target")
    assert page.status_code == 200
    assert 'data-source="/active.json?operator=alice&amp;sort=target"' in page.text
    assert 'href="/active"' in page.text  # in the menu
    open_now(client)
    open_now(client)
    with store_engine.connect() as conn:
        rows = conn.execute(
            select(ACCESS_LOG.c.action, ACCESS_LOG.c.detail).where(ACCESS_LOG.c.auditor == "tom")
        ).all()
    assert [tuple(r) for r in rows if r[0] != "login"] == [
        ("active", "operator='alice' sort='target'")
    ]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize(
    "query",
    [
        "?sort=bytes",  # not a sort of this page
        "?sort=started;drop",
        "?status=closed",  # not a parameter: the page lists open sessions only
        "?operator=alice&operator=bob",
        "?operator=" + "a" * 257,
        "?target=t1%00",
        "?target=t1%1b%5b2J",
    ],
)
def test_bad_parameters_are_400(
    client: TestClient, sessions: dict[str, uuid.UUID], query: str
) -> None:
    assert sign_in(client, "ann").status_code == 303
    for path in ("/active", "/active.json"):
        answer = client.get(path + query)
        assert answer.status_code == 400, (path, query, answer.text)
        assert "alice" not in answer.text.replace("operator=alice", "")


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_nobody_signed_in_is_sent_to_sign_in(client: TestClient) -> None:
    for path in ("/active", "/active.json"):
        answer = client.get(path, follow_redirects=False)
        assert answer.status_code == 303
        assert answer.headers["location"].startswith("/login?next=")
