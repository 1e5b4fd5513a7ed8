"""Sign-in with an identity provider, continued: signing out ends the provider's session
too where it advertises ``end_session_endpoint`` (RP-initiated logout), and groups the
ID token leaves out are read from the userinfo endpoint, for the same ``sub`` only.
Against the real provider of tests/support/oidcprovider.py and a real store."""

from __future__ import annotations

import html
import re
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx2
import pytest
from sqlalchemy import Engine, select
from starlette.testclient import TestClient

from sshtrail.tables import CONSOLE_SESSIONS
from tests.integration.test_web_oidc import (
    CONSOLE,
    client,
    listed_targets,
    logged,
    provider,
    sign_in,
    store,
)
from tests.support.oidcprovider import Provider, User

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]
__all__ = ["client", "provider", "store"]  # the fixtures, shared


def signed_out(client: TestClient) -> Any:
    page = client.get("/sessions")
    token = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert token is not None
    return client.post("/logout", data={"csrf": token[1]}, follow_redirects=False)


def test_signing_out_ends_the_providers_session_where_it_offers(
    client: TestClient, provider: Provider, store: Engine
) -> None:
    provider.end_session = True
    assert sign_in(client, provider, User("carl", ["sshtrail-t1"])).status_code == 200
    with store.connect() as conn:
        kept = conn.execute(select(CONSOLE_SESSIONS.c.id_token)).scalar_one()
    assert kept is not None
    assert kept.count(".") == 2  # the ID token as issued (a JWS in compact form)
    out = signed_out(client)
    assert out.status_code == 200  # a page that moves on: form-action 'self' stops a redirect
    assert 'id="who"' not in out.text
    found = re.search(r'content="0; url=([^"]+)"', out.text)
    assert found is not None
    onwards = html.unescape(found[1])
    assert onwards.startswith(f"{provider.issuer}/logout?")
    query = {k: v[0] for k, v in parse_qs(urlsplit(onwards).query).items()}
    assert query["id_token_hint"] == kept
    assert query["post_logout_redirect_uri"] == f"{CONSOLE}/login"
    back = httpx2.get(onwards, follow_redirects=False)
    assert back.status_code == 302
    assert back.headers["location"] == f"{CONSOLE}/login"
    assert provider.logouts[-1]["id_token_hint"] == kept
    assert client.get("/sessions", follow_redirects=False).status_code == 303
    assert [action for _, action, _ in logged(store)][-1] == "logout"


def test_without_an_end_session_endpoint_only_the_console_signs_out(
    client: TestClient, provider: Provider
) -> None:
    assert sign_in(client, provider, User("carl", ["sshtrail-t1"])).status_code == 200
    out = signed_out(client)
    assert out.status_code == 303
    assert out.headers["location"] == "/login"
    assert provider.logouts == []


def test_groups_the_id_token_leaves_out_come_from_userinfo(
    client: TestClient, provider: Provider, store: Engine
) -> None:
    provider.groups_in_id_token = False
    carl = User("carl", ["staff", "sshtrail-t1"])
    assert sign_in(client, provider, carl).status_code == 200
    assert listed_targets(client) == ["t1"]
    assert logged(store)[0][2] == f"oidc sub={carl.sub} groups=staff,sshtrail-t1 as=sshtrail-t1"


def test_userinfo_about_another_sub_is_not_believed(
    client: TestClient, provider: Provider, store: Engine
) -> None:
    provider.groups_in_id_token = False
    provider.userinfo_sub = "someone-else"
    answer = sign_in(client, provider, User("mallory", ["sshtrail-admins"]))
    assert answer.status_code == 403
    assert client.get("/sessions", follow_redirects=False).status_code == 303
    assert logged(store)[-1][1:] == (
        "login-refused",
        "oidc: the userinfo answer is not about the ID token's sub",
    )
