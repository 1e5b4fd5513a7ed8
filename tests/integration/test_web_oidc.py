"""Sign-in with an identity provider, against a real OpenID Connect provider on loopback
(tests/support/oidcprovider.py, Authlib's server side) and a real store: who gets in
with which rights, who is refused and logged, and what an attacker between the two
cannot make the console believe. The browser's whole redirect dance is in
tests/e2e/test_web_oidc_browser.py."""

from __future__ import annotations

import re
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import msgspec
import pytest
from sqlalchemy import Engine, select
from starlette.testclient import TestClient

from consumer.web.app import create_app
from consumer.web.oidc import MAX_PENDING_PER_ADDRESS
from sshtrail.db import make_engine
from sshtrail.settings import Settings
from sshtrail.tables import ACCESS_LOG
from tests.support.kafka import KafkaCluster
from tests.support.oidcprovider import (
    CLIENT_ID,
    CLIENT_SECRET,
    Provider,
    User,
    olga_on_t1_and_t2,
    running,
)

pytestmark = pytest.mark.integration

STATE_DIR = tempfile.mkdtemp(prefix="sshtrail-oidc-test-")
CONSOLE = "http://127.0.0.1"
CALLBACK = f"{CONSOLE}/login/oidc/callback"


def oidc_settings(url: str, issuer: str, servers: str) -> Settings:
    return msgspec.convert(
        {
            "state_dir": STATE_DIR,
            "kafka": {"bootstrap_servers": servers},
            "database": {"url": url},
            "search": {"url": url},
            "web": {
                "oidc": {
                    "discovery_url": f"{issuer}/.well-known/openid-configuration",
                    "client_id": CLIENT_ID,
                    "client_secret": CLIENT_SECRET,
                    "scopes": ["openid", "profile", "groups"],
                    "label": "Example IdP",
                    "groups": [
                        {"group": "sshtrail-t1", "targets": ["t1"], "terminate": True},
                        {"group": "sshtrail-admins", "role": "admin"},
                    ],
                }
            },
        },
        Settings,
    )


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Engine]:
    url = f"sqlite:///{tmp_path / 'sshtrail.db'}"
    olga_on_t1_and_t2(url)
    engine = make_engine(url)
    yield engine
    engine.dispose()


@pytest.fixture
def provider() -> Iterator[Provider]:
    with running([CALLBACK]) as started:
        yield started


@pytest.fixture
def client(store: Engine, provider: Provider, broker: KafkaCluster) -> Iterator[TestClient]:
    url = store.url.render_as_string(hide_password=False)
    with TestClient(
        create_app(oidc_settings(url, provider.issuer, broker.bootstrap_servers)), base_url=CONSOLE
    ) as test:
        yield test


def at_provider(client: TestClient, wanted: str = "/sessions") -> str:
    """Start a sign-in and let the provider answer: the callback it sends the browser to."""
    start = client.get("/login/oidc", params={"next": wanted}, follow_redirects=False)
    assert start.status_code == 303, start.text
    answer = httpx2.get(start.headers["location"], follow_redirects=False)
    assert answer.status_code == 302, answer.text
    callback = str(answer.headers["location"])
    assert callback.startswith(CALLBACK)
    return callback[len(CONSOLE) :]


def sign_in(client: TestClient, provider: Provider, user: User | None) -> Any:
    provider.user = user
    return client.get(at_provider(client), follow_redirects=False)


def logged(store: Engine) -> list[tuple[str, str, str]]:
    with store.connect() as conn:
        rows = conn.execute(
            select(ACCESS_LOG.c.auditor, ACCESS_LOG.c.action, ACCESS_LOG.c.detail).order_by(
                ACCESS_LOG.c.id
            )
        )
        return [(r.auditor, r.action, r.detail) for r in rows]


def listed_targets(client: TestClient) -> list[str]:
    page = client.get("/sessions")
    assert page.status_code == 200, page.text
    return sorted(set(re.findall(r"echo on (t\d)", page.text)))


def test_the_login_page_offers_the_provider(client: TestClient) -> None:
    page = client.get("/login", params={"next": "/search"})
    assert "Sign in with Example IdP" in page.text
    assert 'href="/login/oidc?next=%2Fsearch"' in page.text
    assert 'id="password"' in page.text  # local accounts stay


def test_a_mapped_group_signs_in_with_its_role_and_scope(
    client: TestClient, provider: Provider, store: Engine
) -> None:
    carl = User("carl", ["staff", "sshtrail-t1"])
    answer = sign_in(client, provider, carl)
    assert answer.status_code == 200, answer.text
    assert 'content="0; url=/sessions"' in answer.text
    asked = provider.requests[-1]
    assert asked["code_challenge_method"] == "S256"
    assert asked["nonce"]
    assert asked["state"]
    assert listed_targets(client) == ["t1"]  # the group's scope
    assert client.get("/lag").status_code == 404  # an auditor, not an admin
    page = client.get("/sessions").text
    assert 'id="who">carl<' in page
    assert "(auditor)" in page
    assert 'id="logout"' in page
    assert logged(store)[0] == (
        "carl",
        "login",
        f"oidc sub={carl.sub} groups=staff,sshtrail-t1 as=sshtrail-t1",
    )


def test_an_admin_group_signs_in_as_admin(client: TestClient, provider: Provider) -> None:
    assert sign_in(client, provider, User("ada", ["sshtrail-admins"])).status_code == 200
    assert listed_targets(client) == ["t1", "t2"]
    assert client.get("/lag").status_code == 200


def test_a_user_no_group_maps_is_refused_and_logged(
    client: TestClient, provider: Provider, store: Engine
) -> None:
    mallory = User("mallory", ["staff", "sshtrail-T1"])  # a near miss is a miss
    answer = sign_in(client, provider, mallory)
    assert answer.status_code == 403
    assert "mallory is not given access to this console by their groups" in answer.text
    assert "sshtrail_session" not in answer.cookies
    assert client.get("/sessions", follow_redirects=False).status_code == 303
    [(who, action, detail)] = logged(store)
    assert (who, action) == ("mallory", "login-refused")
    assert detail.startswith("oidc: no [[web.oidc.groups]] maps their groups")
    assert "groups=staff,sshtrail-T1" in detail


@pytest.mark.parametrize(
    ("spoil", "reason"),
    [
        ("signature", "ID token not believed: BadSignatureError"),
        ("claims", "ID token not believed: BadSignatureError"),
        ("unpublished-key", "ID token not believed: BadSignatureError"),
        ("nonce", "ID token not valid: InvalidClaimError: invalid_claim: Invalid claim: 'nonce'"),
        ("audience", "ID token not valid: InvalidClaimError: invalid_claim: Invalid claim: 'aud'"),
        ("issuer", "ID token not valid: InvalidClaimError: invalid_claim: Invalid claim: 'iss'"),
        ("expired", "ID token not valid: ExpiredTokenError"),
    ],
)
def test_an_id_token_tampered_with_is_refused(
    client: TestClient, provider: Provider, store: Engine, spoil: str, reason: str
) -> None:
    provider.spoil = spoil
    answer = sign_in(client, provider, User("ada", ["sshtrail-admins"]))
    assert answer.status_code == 403
    assert "answer was not accepted" in answer.text
    assert "sshtrail_session" not in answer.cookies
    assert client.get("/lag", follow_redirects=False).status_code == 303
    [(who, action, detail)] = logged(store)
    assert (who, action) == ("-", "login-refused")
    assert detail.startswith(f"oidc: {reason}"), detail


def test_a_state_is_used_once_and_only_by_its_browser(
    client: TestClient, provider: Provider, store: Engine
) -> None:
    provider.user = User("carl", ["sshtrail-t1"])
    callback = at_provider(client)
    forged = re.sub(r"state=[^&]+", "state=forged", callback)
    assert client.get(forged, follow_redirects=False).status_code == 400
    elsewhere = TestClient(client.app, base_url=CONSOLE)  # no cookie of the start
    assert elsewhere.get(callback, follow_redirects=False).status_code == 400
    # The attempt from elsewhere spent the state: the browser that started it starts again.
    again = client.get(callback, follow_redirects=False)
    assert again.status_code == 400
    assert "start again" in again.text
    assert client.get(at_provider(client), follow_redirects=False).status_code == 200
    actions = [action for _, action, _ in logged(store)]
    assert actions == ["login-refused", "login"]  # nameless refusals: once a minute


def test_a_callback_replayed_is_refused(client: TestClient, provider: Provider) -> None:
    provider.user = User("carl", ["sshtrail-t1"])
    callback = at_provider(client)
    browser = client.cookies["sshtrail_oidc"]
    assert client.get(callback, follow_redirects=False).status_code == 200
    # Even with the browser's cookie of that sign-in kept, its state is spent.
    again = TestClient(client.app, base_url=CONSOLE, cookies={"sshtrail_oidc": browser})
    replayed = again.get(callback, follow_redirects=False)
    assert replayed.status_code == 400
    assert "start again" in replayed.text


def test_the_provider_saying_no_is_refused(
    client: TestClient, provider: Provider, store: Engine
) -> None:
    answer = sign_in(client, provider, None)
    assert answer.status_code == 403
    assert logged(store) == [("-", "login-refused", "oidc: the provider answered access_denied")]


def test_signing_out_ends_the_console_session(
    client: TestClient, provider: Provider, store: Engine
) -> None:
    assert sign_in(client, provider, User("carl", ["sshtrail-t1"])).status_code == 200
    page = client.get("/sessions")
    token = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert token is not None
    out = client.post("/logout", data={"csrf": token[1]}, follow_redirects=False)
    assert out.status_code == 303
    assert client.get("/sessions", follow_redirects=False).status_code == 303
    assert [action for _, action, _ in logged(store)][-1] == "logout"


def test_an_address_has_so_many_sign_ins_started_at_most(
    client: TestClient, provider: Provider
) -> None:
    provider.user = User("carl", ["sshtrail-t1"])
    callback = at_provider(client)
    flood = TestClient(client.app, base_url=CONSOLE)  # another browser at the same address
    started = [flood.get("/login/oidc", follow_redirects=False).status_code for _ in range(25)]
    assert started == [303] * (MAX_PENDING_PER_ADDRESS - 1) + [429] * 6
    assert client.get(callback, follow_redirects=False).status_code == 200  # taken back
    assert flood.get("/login/oidc", follow_redirects=False).status_code == 303


@pytest.mark.parametrize("name", ["carl\n", "carl smith", "<b>carl</b>", ""])
def test_a_name_claim_that_is_no_auditor_name_is_refused(
    client: TestClient, provider: Provider, store: Engine, name: str
) -> None:
    answer = sign_in(client, provider, User(name, ["sshtrail-admins"]))
    assert answer.status_code == 403
    assert logged(store) == [
        ("-", "login-refused", "oidc: the ID token's preferred_username is not an auditor name")
    ]


def test_only_places_of_the_console_after_signing_in(
    client: TestClient, provider: Provider
) -> None:
    provider.user = User("carl", ["sshtrail-t1"])
    for wanted, shown in [
        ("/search?q=a b", "/search?q=a%20b"),
        ("/\t/elsewhere.example", "/%09/elsewhere.example"),
        ("//elsewhere.example", "/sessions"),
        ("https://elsewhere.example", "/sessions"),
    ]:
        answer = client.get(at_provider(client, wanted), follow_redirects=False)
        assert f'content="0; url={shown}"' in answer.text, wanted
