"""The web console's HTTP surface against a real store (SQLite and PostgreSQL): sign-in,
CSRF, cookies, rate limits, scopes in SQL, proxy identity, headers, and garbage in
every parameter. The browser tests (tests/e2e/test_web_console.py) drive the pages."""

from __future__ import annotations

import datetime as dt
import re
import tempfile
import uuid
from collections.abc import Iterator
from typing import Any

import msgspec
import pytest
from sqlalchemy import Engine, select, text
from starlette.testclient import TestClient

from consumer.web.app import create_app
from consumer.web.headers import CSP
from sshtrail import search
from sshtrail.passwords import hash_password
from sshtrail.settings import AuditorSettings, Settings
from sshtrail.tables import ACCESS_LOG, SESSIONS, TRANSFERS
from tests.support.kafka import KafkaCluster

pytestmark = pytest.mark.integration

#: Where the consoles of these tests make their control key (it signs the access
#: log's heads), not ./sshtrail-data of the folder the tests run in.
STATE_DIR = tempfile.mkdtemp(prefix="sshtrail-web-test-")

PASSWORD = "a-long-password"
HASH = hash_password(PASSWORD)
#: (operator, target) of the stored sessions; ``web_1`` tells GLOB from LIKE (``_``).
STORED = [
    ("alice", "t1"),
    ("alice", "web_1"),
    ("alice", "webx1"),
    ("bob", "t1"),
    ("Alice", "T1"),
    (None, None),  # a refused login names nobody
]


def settings_for(url: str, servers: str, **web: Any) -> Settings:
    """A console on the store at ``url`` whose access log's heads go to Kafka at ``servers``
    (the shared test broker: with none answering, each console's close waited out the
    heads' five-second flush)."""
    return msgspec.convert(
        {
            "state_dir": STATE_DIR,
            "kafka": {"bootstrap_servers": servers},
            "database": {"url": url},
            "search": {"url": url},
            "web": {"login_failures": 3, **web},
            "auditors": [
                {"name": "ann", "password_hash": HASH, "role": "admin"},
                {"name": "tom", "password_hash": HASH, "targets": ["t1"]},
                {"name": "una", "password_hash": HASH, "targets": ["web_?"]},
                {"name": "bea", "password_hash": HASH, "operators": ["b*"]},
                {"name": "sso-only"},
            ],
        },
        Settings,
    )


@pytest.fixture
def stored(store_engine: Engine) -> dict[tuple[str | None, str | None], uuid.UUID]:
    ids = {}
    start = dt.datetime(2026, 12, 1, 9, 0, tzinfo=dt.UTC)
    with store_engine.begin() as conn:
        for n, (operator, target) in enumerate(STORED):
            session_id = uuid.uuid4()
            ids[operator, target] = session_id
            conn.execute(
                SESSIONS.insert().values(
                    id=session_id,
                    operator=operator,
                    target=target,
                    started_at=start + dt.timedelta(minutes=n),
                    status="closed" if operator else "refused",
                    command=f"echo <script>alert({n})</script>",
                    request="exec",
                    bytes_in=0,
                    bytes_out=0,
                    chunk_count=0,
                    gaps=[],
                )
            )
    return ids


@pytest.fixture
def client(store_engine: Engine, broker: KafkaCluster) -> Iterator[TestClient]:
    url = str(store_engine.url.render_as_string(hide_password=False))
    app = create_app(settings_for(url, broker.bootstrap_servers))
    with TestClient(app, base_url="http://127.0.0.1") as test_client:
        yield test_client


def login_token(client: TestClient) -> str:
    page = client.get("/login")
    found = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert found is not None
    return found[1]


def sign_in(client: TestClient, name: str, password: str = PASSWORD) -> Any:
    return client.post(
        "/login",
        data={"name": name, "password": password, "csrf": login_token(client), "next": "/sessions"},
        follow_redirects=False,
    )


def listed(client: TestClient, query: str = "") -> set[str]:
    page = client.get("/sessions" + query)
    assert page.status_code == 200, page.text
    return set(re.findall(r'data-session="([0-9a-f]{32})"', page.text))


def test_scopes_are_exact_in_sql_on_both_engines(
    client: TestClient, stored: dict[tuple[str | None, str | None], uuid.UUID]
) -> None:
    expected = {
        "ann": set(stored.values()),
        "tom": {stored["alice", "t1"], stored["bob", "t1"]},  # not T1: case counts
        "una": {stored["alice", "web_1"]},  # "_" is a character, not a wildcard
        "bea": {stored["bob", "t1"]},
    }
    for name, sessions in expected.items():
        client.cookies.clear()
        assert sign_in(client, name).status_code == 303
        assert listed(client) == {s.hex for s in sessions}, name
        for session_id in set(stored.values()) - sessions:
            for path in ("", "/cast", "/export/raw", "/export/json", "/export/asciicast"):
                assert client.get(f"/sessions/{session_id.hex}{path}").status_code == 404


def found_by_search(client: TestClient, query: str) -> set[str]:
    page = client.get("/search" + query)
    assert page.status_code == 200, page.text
    return set(re.findall(r'class="hit" data-session="([0-9a-f]{32})"', page.text))


def test_scopes_are_exact_in_the_sql_of_search_and_transfers_on_both_engines(
    client: TestClient,
    store_engine: Engine,
    stored: dict[tuple[str | None, str | None], uuid.UUID],
) -> None:
    search.ensure_schema(store_engine)  # the index shares the store's database here
    with store_engine.begin() as conn:
        for n, ((operator, target), session_id) in enumerate(stored.items()):
            conn.execute(
                search.DOCS.insert().values(
                    session_id=session_id,
                    kind="command",
                    ordinal=0,
                    seq=1,
                    t=1_000_000,
                    operator=operator,
                    target=target,
                    text=f"cat /etc/needle-{n}",
                )
            )
            conn.execute(
                TRANSFERS.insert().values(
                    session_id=session_id,
                    idx=0,
                    t=2_000_000,
                    protocol="sftp",
                    op="put",
                    path=f"/tmp/needle-{n}.tar",
                    status="ok",
                    bytes=10,
                    detail={},
                )
            )
    expected = {
        "ann": set(stored.values()),
        "tom": {stored["alice", "t1"], stored["bob", "t1"]},
        "una": {stored["alice", "web_1"]},
        "bea": {stored["bob", "t1"]},
    }
    for name, sessions in expected.items():
        client.cookies.clear()
        assert sign_in(client, name).status_code == 303
        want = {s.hex for s in sessions}
        assert found_by_search(client, "?q=needle&kind=command") == want, (name, "commands")
        assert found_by_search(client, "?q=needle&kind=transfer") == want, (name, "transfers")
        assert found_by_search(client, "?q=needle") == want, (name, "both")


def test_sign_in_needs_the_form_token_and_the_right_password(client: TestClient) -> None:
    answer = client.post(
        "/login",
        data={"name": "ann", "password": PASSWORD, "csrf": "forged"},
        follow_redirects=False,
    )
    assert answer.status_code == 400
    assert "sshtrail_session" not in answer.headers.get("set-cookie", "")
    assert sign_in(client, "ann", "wrong").status_code == 401
    assert sign_in(client, "nobody").status_code == 401
    assert sign_in(client, "sso-only", "").status_code == 400  # no password login at all
    good = sign_in(client, "ann")
    assert good.status_code == 303
    cookie = next(c for c in good.headers.get_list("set-cookie") if "sshtrail_session=" in c)
    assert "HttpOnly" in cookie
    assert "SameSite=strict" in cookie
    assert "Secure" not in cookie  # no TLS here


def test_failed_sign_ins_are_limited_per_account_and_per_address(client: TestClient) -> None:
    for _ in range(3):
        assert sign_in(client, "tom", "wrong").status_code == 401
    # Now even the right password is refused, unchecked, for a while.
    assert sign_in(client, "tom").status_code == 429
    assert sign_in(client, "ann").status_code == 429  # the same address


def test_refused_sign_ins_are_logged_once_a_minute_not_each(
    client: TestClient, store_engine: Engine
) -> None:
    for _ in range(3):
        sign_in(client, "tom", "wrong")
    for _ in range(20):
        assert sign_in(client, "tom", "wrong").status_code == 429
    with store_engine.connect() as conn:
        actions = list(
            conn.execute(select(ACCESS_LOG.c.action).order_by(ACCESS_LOG.c.id)).scalars()
        )
    assert actions == ["login-failed"] * 3 + ["login-refused"]


def test_the_access_log_has_every_sign_in_and_look(
    client: TestClient, store_engine: Engine, stored: dict[tuple[str | None, str | None], uuid.UUID]
) -> None:
    sign_in(client, "tom", "wrong")
    sign_in(client, "tom")
    client.get("/sessions?target=t1")
    client.get("/search?q=secret")
    visible = stored["alice", "t1"]
    hidden = stored["alice", "webx1"]
    client.get(f"/sessions/{visible.hex}")
    client.get(f"/sessions/{visible.hex}/cast")
    client.get(f"/sessions/{visible.hex}/export/json")
    client.get(f"/sessions/{hidden.hex}")
    client.get("/access-log")  # not an admin: a 404, and logged
    with store_engine.connect() as conn:
        rows = conn.execute(select(ACCESS_LOG).order_by(ACCESS_LOG.c.id)).mappings().all()
    seen = [(r["auditor"], r["action"], r["session_id"], r["detail"]) for r in rows]
    assert seen == [
        ("tom", "login-failed", None, ""),
        ("tom", "login", None, ""),
        ("tom", "sessions", None, "target='t1'"),
        ("tom", "search", None, "q='secret'"),
        ("tom", "view", visible, ""),
        ("tom", "replay", visible, ""),
        ("tom", "export", visible, "json"),
        ("tom", "denied", hidden, "out of scope"),
        ("tom", "denied", None, "admin page /access-log"),
    ]
    assert {r["address"] for r in rows} == {"testclient"}


def test_nothing_is_shown_when_the_access_log_cannot_be_written(
    client: TestClient, store_engine: Engine, stored: dict[tuple[str | None, str | None], uuid.UUID]
) -> None:
    """Every look is logged before it is answered: a store that takes no access log entry
    (here: its table gone) gets a 503 and shows nothing, on both engines."""
    assert sign_in(client, "ann").status_code == 303
    session_id = stored["alice", "t1"]
    assert client.get(f"/sessions/{session_id.hex}").status_code == 200
    with store_engine.begin() as conn:
        conn.execute(text("DROP TABLE access_log"))
    for path in ("/sessions", f"/sessions/{session_id.hex}", "/search?q=echo"):
        page = client.get(path)
        assert page.status_code == 503, path
        assert "the access log cannot be written" in page.text
        assert "alert(" not in page.text, f"{path} showed a session"


def test_every_answer_carries_the_security_headers(
    client: TestClient, stored: dict[tuple[str | None, str | None], uuid.UUID]
) -> None:
    for path in ("/login", "/sessions", "/nowhere", "/static/console.js"):
        answer = client.get(path, follow_redirects=False)
        assert answer.headers["content-security-policy"] == CSP, path
        assert answer.headers["x-frame-options"] == "DENY"
        assert answer.headers["x-content-type-options"] == "nosniff"
    assert "unsafe-inline" not in CSP
    assert "unsafe-eval'" not in CSP.replace("wasm-unsafe-eval", "")
    sign_in(client, "ann")
    page = client.get("/sessions")
    assert page.headers["cache-control"] == "no-store"
    assert "<script>alert" not in page.text  # stored commands are escaped
    assert "&lt;script&gt;alert" in page.text
    assert not re.search(r"<script>(?!</script>)", page.text.replace('<script src="', ""))
    assert " style=" not in page.text  # no inline styles for the CSP to refuse


def test_signing_out_needs_its_token_and_ends_the_session(client: TestClient) -> None:
    sign_in(client, "ann")
    page = client.get("/sessions")
    token = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert token is not None
    assert client.post("/logout", data={"csrf": "forged"}).status_code == 403
    assert client.get("/sessions", follow_redirects=False).status_code == 200
    assert (
        client.post("/logout", data={"csrf": token[1]}, follow_redirects=False).status_code == 303
    )
    assert client.get("/sessions", follow_redirects=False).status_code == 303


def test_only_local_places_after_sign_in(client: TestClient) -> None:
    for wanted in ("https://evil.example/", "//evil.example/x", "/\\evil.example", "javascript:x"):
        answer = client.post(
            "/login",
            data={"name": "ann", "password": PASSWORD, "csrf": login_token(client), "next": wanted},
            follow_redirects=False,
        )
        assert answer.headers["location"] == "/sessions", wanted


def test_garbage_in_every_parameter_is_a_clear_answer(
    client: TestClient, stored: dict[tuple[str | None, str | None], uuid.UUID]
) -> None:
    sign_in(client, "ann")
    for path in (
        "/sessions?since=yesterday",
        "/sessions?since=999999999w",  # before year 1: an OverflowError, once a 500
        "/search?q=x&until=9999-12-31T23:59:59-01:00",  # past year 9999 in UTC
        "/sessions?status=%00",
        "/sessions?policy=blocked",
        "/sessions?sort=password",
        "/search?q=x&kind=nonsense",
        "/search?q=x&until=31:99",
        "/access-log?session=not-an-id",
        "/access-log?action=drop",
    ):
        answer = client.get(path)
        assert answer.status_code == 400, path
        assert 'class="problem"' in answer.text, path
    for path in (
        "/sessions/zz",
        "/sessions/" + "0" * 32,
        "/sessions/%3Cscript%3E",
        f"/sessions/{stored['alice', 't1'].hex}/export/exe",
    ):
        assert client.get(path).status_code == 404, path
    for path in (
        "/sessions?page=-4",
        "/sessions?page=x",
        "/search?q=" + "x" * 5000,
        "/search?q=%00",
        "/sessions?operator=%00&target=a%00b",  # no stored text holds a NUL
    ):
        assert client.get(path).status_code == 200, path
    assert client.post("/login", content=b"\xff" * 10000).status_code == 400
    assert client.post("/login", content=b"name=" + b"x" * 20000).status_code == 413

    def endless() -> Iterator[bytes]:  # chunked: no length given, so none is taken
        yield b"name=ann&"
        yield b"x" * 100

    assert client.post("/login", content=endless()).status_code == 413


def test_a_trusted_proxy_names_the_auditor_and_others_cannot(
    store_engine: Engine, broker: KafkaCluster
) -> None:
    url = str(store_engine.url.render_as_string(hide_password=False))
    proxied = create_app(
        settings_for(url, broker.bootstrap_servers, trusted_proxies=["127.0.0.0/8"])
    )
    with TestClient(proxied, base_url="http://127.0.0.1", client=("127.0.0.1", 5000)) as behind:
        assert behind.get("/sessions", headers={"X-Forwarded-User": "sso-only"}).status_code == 200
        assert behind.get("/sessions", headers={"X-Forwarded-User": "stranger"}).status_code == 403
        assert behind.get("/sessions").status_code == 403
    with TestClient(proxied, base_url="http://127.0.0.1", client=("192.0.2.7", 5000)) as direct:
        answer = direct.get(
            "/sessions", headers={"X-Forwarded-User": "ann"}, follow_redirects=False
        )
        assert answer.status_code == 303  # the header from anyone else means nothing


def test_tls_settings_make_the_cookie_secure_and_host_only(
    store_engine: Engine, broker: KafkaCluster
) -> None:
    url = str(store_engine.url.render_as_string(hide_password=False))
    app = create_app(
        settings_for(
            url, broker.bootstrap_servers, tls_cert="/nonexistent.pem", tls_key="/nonexistent.key"
        )
    )
    with TestClient(app, base_url="https://127.0.0.1") as client:
        answer = sign_in(client, "ann")
        cookie = next(c for c in answer.headers.get_list("set-cookie") if "sshtrail_session=" in c)
        assert cookie.startswith("__Host-sshtrail_session=")
        assert "Secure" in cookie
        assert "strict-transport-security" in answer.headers


def test_terminate_needs_the_right_the_token_and_a_reason(
    store_engine: Engine,
    stored: dict[tuple[str | None, str | None], uuid.UUID],
    broker: KafkaCluster,
) -> None:
    url = str(store_engine.url.render_as_string(hide_password=False))
    settings = settings_for(url, broker.bootstrap_servers, trusted_proxies=["127.0.0.0/8"])
    settings = msgspec.structs.replace(
        settings,
        auditors=[
            *settings.auditors,
            msgspec.convert({"name": "sso-terminator", "terminate": True}, AuditorSettings),
        ],
    )
    closed = stored["alice", "t1"].hex
    active = uuid.uuid4()
    with store_engine.begin() as conn:
        conn.execute(
            SESSIONS.insert().values(
                id=active,
                operator="alice",
                target="t1",
                started_at=dt.datetime.now(dt.UTC),
                status="active",
                bytes_in=0,
                bytes_out=0,
                chunk_count=0,
                gaps=[],
            )
        )
    with TestClient(create_app(settings), client=("127.0.0.1", 5000)) as client:
        may = {"X-Forwarded-User": "sso-terminator"}
        assert 'id="terminate"' not in client.get(f"/sessions/{closed}", headers=may).text
        page = client.get(f"/sessions/{active.hex}", headers=may)
        assert 'id="terminate"' in page.text
        token = re.search(r'name="csrf" value="([^"]+)"', page.text)
        assert token is not None
        path = f"/sessions/{closed}/terminate"
        forged = client.post(path, headers=may, data={"csrf": "x", "reason": "r"})
        assert forged.status_code == 403
        empty = client.post(path, headers=may, data={"csrf": token[1], "reason": "  "})
        assert empty.status_code == 400
        ended = client.post(path, headers=may, data={"csrf": token[1], "reason": "why"})
        assert ended.status_code == 409
        assert "already ended" in ended.text
    with TestClient(create_app(settings), client=("192.0.2.1", 5000)) as other:
        sign_in(other, "ann")  # an admin, but without the right
        theirs = re.search(r'name="csrf" value="([^"]+)"', other.get("/sessions").text)
        assert theirs is not None
        refused = other.post(path, data={"csrf": theirs[1], "reason": "why"})
        assert refused.status_code == 403
    with store_engine.connect() as conn:
        rows = conn.execute(
            select(ACCESS_LOG.c.auditor, ACCESS_LOG.c.action, ACCESS_LOG.c.detail).where(
                ACCESS_LOG.c.action.in_(["terminate", "denied"])
            )
        ).all()
    assert ("sso-terminator", "terminate", "why") in rows
    assert ("ann", "denied", "terminate") in rows


def test_garbage_posted_to_the_reviews_page_is_a_clear_answer(client: TestClient) -> None:
    """Answers to reviews: the form's token, the answer, the review's id are checked
    before anything is sent; without a broker the page says why, and the console runs on."""
    assert sign_in(client, "tom").status_code == 303
    page = client.get("/reviews")
    assert page.status_code == 503  # no broker in these tests: said, not a crash
    assert "the control topic cannot be read" in page.text
    token = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert token is not None
    good = "0" * 32
    cases = [
        (good, {"csrf": "forged", "answer": "approve", "reason": "r"}, 403),
        (good, {"csrf": token[1], "answer": "maybe", "reason": "r"}, 400),
        (good, {"csrf": token[1], "reason": "r"}, 400),
        ("../../etc", {"csrf": token[1], "answer": "approve", "reason": "r"}, 404),
        ("A" * 32, {"csrf": token[1], "answer": "deny", "reason": "r"}, 404),
        (good, {"csrf": token[1], "answer": "deny", "reason": "r"}, 503),
    ]
    for review, form, status in cases:
        answered = client.post(f"/reviews/{review}", data=form, follow_redirects=False)
        assert answered.status_code == status, (review, form, answered.text[:300])
    assert client.get("/sessions").status_code == 200
