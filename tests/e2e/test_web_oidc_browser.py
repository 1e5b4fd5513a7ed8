"""Sign-in with an identity provider in Debian's chromium: ``sshtrail web`` as its own
process, a real OpenID Connect provider (tests/support/oidcprovider.py) named
``localhost``, so that it is another site than the console on 127.0.0.1 and the
browser applies its cross-site cookie rules to the whole redirect dance."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import tomli_w

from tests.support.browser import needs_chromium, problems_in_console, start_console
from tests.support.oidcprovider import (
    CLIENT_ID,
    CLIENT_SECRET,
    Provider,
    User,
    olga_on_t1_and_t2,
    running,
)
from tests.support.waiting import wait_for

pytestmark = [pytest.mark.e2e, needs_chromium]


@dataclass
class Site:
    url: str
    provider: Provider


@contextmanager
def serving(root: Path, end_session: bool = False) -> Iterator[Site]:
    """``sshtrail web`` and a provider (advertising ``end_session_endpoint`` where
    asked: the console reads its discovery document once)."""
    store_url = f"sqlite:///{root / 'store.db'}"
    olga_on_t1_and_t2(store_url)
    with running([], host="localhost") as provider:
        provider.end_session = end_session
        config = root / "sshtrail.toml"
        settings: dict[str, Any] = {
            "state_dir": str(root / "state"),
            "database": {"url": store_url},
            "search": {"url": f"sqlite:///{root / 'search.db'}"},
            "web": {
                "oidc": {
                    "discovery_url": f"{provider.issuer}/.well-known/openid-configuration",
                    "client_id": CLIENT_ID,
                    "client_secret": CLIENT_SECRET,
                    "label": "Example IdP",
                    "groups": [{"group": "sshtrail-t1", "targets": ["t1"]}],
                }
            },
        }
        config.write_text(tomli_w.dumps(settings))
        process, url = start_console(config, root)
        provider.client.redirect_uris.append(f"{url}/login/oidc/callback")
        provider.sign_in_page = True
        try:
            yield Site(url, provider)
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    with serving(tmp_path_factory.mktemp("oidc")) as started:
        yield started


def test_signing_in_and_out_through_the_provider(browser: Any, site: Site) -> None:
    from selenium.webdriver.common.by import By

    site.provider.user = User("carl", ["staff", "sshtrail-t1"])
    browser.delete_all_cookies()
    browser.get(f"{site.url}/sessions")
    wait_for(lambda: "/login" in browser.current_url, what="sent to sign in", timeout=15)
    browser.find_element(By.ID, "sign-in-oidc").click()
    # To the provider and back: the callback's page moves on to the sessions, from
    # this site, where the console's SameSite=Strict cookie is sent.
    wait_for(
        lambda: browser.current_url == f"{site.url}/sessions",
        what="signed in and on the sessions page",
        timeout=15,
    )
    assert browser.find_element(By.ID, "who").text == "carl"
    page = browser.page_source
    assert "echo on t1" in page
    assert "echo on t2" not in page  # the group's scope
    assert site.provider.requests[-1]["code_challenge_method"] == "S256"

    browser.find_element(By.ID, "logout").click()
    wait_for(lambda: "/login" in browser.current_url, what="signed out", timeout=15)
    browser.get(f"{site.url}/sessions")
    wait_for(lambda: "/login" in browser.current_url, what="the sign-in ended", timeout=15)
    assert problems_in_console(browser) == []


def test_a_user_no_group_maps_sees_why(browser: Any, site: Site) -> None:
    from selenium.webdriver.common.by import By

    site.provider.user = User("mallory", ["staff"])
    browser.delete_all_cookies()
    browser.get(f"{site.url}/login")
    browser.find_element(By.ID, "sign-in-oidc").click()
    wait_for(
        lambda: "/login/oidc/callback" in browser.current_url,
        what="back from the provider",
        timeout=15,
    )
    assert "mallory is not given access to this console by their groups" in (
        browser.find_element(By.ID, "error").text
    )
    browser.get(f"{site.url}/sessions")
    wait_for(lambda: "/login" in browser.current_url, what="not signed in", timeout=15)


def test_signing_out_ends_the_providers_session_where_it_offers(
    browser: Any, tmp_path: Path
) -> None:
    from selenium.webdriver.common.by import By

    problems_in_console(browser)  # what the tests before left in the log (a refusal's 403)
    with serving(tmp_path, end_session=True) as site:
        site.provider.user = User("carl", ["sshtrail-t1"])
        browser.delete_all_cookies()
        browser.get(f"{site.url}/login")
        browser.find_element(By.ID, "sign-in-oidc").click()
        wait_for(
            lambda: browser.current_url == f"{site.url}/sessions", what="signed in", timeout=15
        )
        browser.find_element(By.ID, "logout").click()
        # through the provider's end_session_endpoint and back to the console's sign-in
        wait_for(lambda: bool(site.provider.logouts), what="the provider told", timeout=15)
        wait_for(
            lambda: browser.current_url == f"{site.url}/login", what="back to sign in", timeout=15
        )
        told = site.provider.logouts[-1]
        assert told["post_logout_redirect_uri"] == f"{site.url}/login"
        assert told["id_token_hint"].count(".") == 2
        browser.get(f"{site.url}/sessions")
        wait_for(lambda: "/login" in browser.current_url, what="the sign-in ended", timeout=15)
        assert problems_in_console(browser) == []
