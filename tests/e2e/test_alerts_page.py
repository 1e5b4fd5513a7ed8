"""The console's alerts page in Debian's chromium (Selenium): an alert stored while the page
is open appears on it without a reload, its hostile title shown as text, and its link opens
the session's player at the moment of the command.

The alert is written straight into the store here; the path from the gateway through the
alert group to the store is tests/e2e/test_alerts.py.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine

from sshtrail import migrate
from sshtrail.broker import EmbeddedBroker
from sshtrail.db import make_engine
from sshtrail.tables import ALERTS, SESSIONS
from tests.support.auditors import auditor
from tests.support.browser import (
    console_running,
    needs_chromium,
    no_alert,
    problems_in_console,
    sign_in,
)
from tests.support.gateway import toml_table, toml_value
from tests.support.storerows import session_row
from tests.support.waiting import wait_for

pytestmark = [pytest.mark.e2e, needs_chromium]

ANN, ANN_PASSWORD = "ann", "ann-password-1"
HOSTILE_TITLE = "<img src=x onerror=alert('title')>"


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Engine]:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    migrate.upgrade(url)
    engine = make_engine(url)
    yield engine
    engine.dispose()


@pytest.fixture
def console_url(tmp_path: Path, store: Engine, embedded_broker: EmbeddedBroker) -> Iterator[str]:
    config = tmp_path / "sshtrail.toml"
    search_url = f"sqlite:///{tmp_path / 'search.db'}"
    config.write_text(
        f"state_dir = {toml_value(str(tmp_path / 'state'))}\n"
        + toml_table("[kafka]", bootstrap_servers=embedded_broker.bootstrap_servers)
        + toml_table("[database]", url=store.url.render_as_string(hide_password=False))
        + toml_table("[search]", url=search_url)
        + auditor(ANN, ANN_PASSWORD, role="admin")
    )
    with console_running(config, tmp_path) as url:
        yield url


def test_an_alert_stored_while_the_page_is_open_appears_without_a_reload(
    browser: object, console_url: str, store: Engine
) -> None:
    from selenium.webdriver.common.by import By

    d: Any = browser
    session_id = uuid.uuid4()
    with store.begin() as conn:
        conn.execute(SESSIONS.insert().values(session_row(session_id, "active")))
    sign_in(d, console_url, ANN, ANN_PASSWORD)
    d.get(f"{console_url}/alerts")
    assert d.find_elements(By.CSS_SELECTOR, "tr.alert") == []
    assert d.find_element(By.ID, "alerts").text.endswith("No alerts match.")
    d.execute_script("window.sshtrailNotReloaded = true;")
    alert_id = uuid.uuid4().hex
    with store.begin() as conn:
        conn.execute(
            ALERTS.insert().values(
                id=alert_id,
                session_id=session_id,
                seq=2,
                t=7_250_000_000,
                at=dt.datetime.now(dt.UTC),
                rule_id="0c7c5a8e-6b1c-4a3b-9c41-2b8e7f3d9a10",
                title=HOSTILE_TITLE,
                level="high",
                author="tests",
                operator="alice",
                target="t1",
                command="mkfifo /tmp/f",
                tags=[],
                event={"CommandLine": "mkfifo /tmp/f"},
                published=False,
                delivered=False,
            )
        )
    row = f'tr.alert[data-alert="{alert_id}"]'
    wait_for(
        lambda: bool(d.find_elements(By.CSS_SELECTOR, row)),
        what="the alert on the open page",
        timeout=15,
    )
    assert d.execute_script("return window.sshtrailNotReloaded === true;")
    shown = d.find_element(By.CSS_SELECTOR, row)
    assert HOSTILE_TITLE in shown.find_element(By.CSS_SELECTOR, ".title").text
    assert shown.find_element(By.CSS_SELECTOR, ".level").text == "high"
    assert "mkfifo /tmp/f" in shown.text
    no_alert(d)
    assert problems_in_console(d) == []
    shown.find_element(By.CSS_SELECTOR, "a.open").click()
    wait_for(lambda: "/sessions/" in d.current_url, what="the session page", timeout=15)
    assert d.current_url.endswith(f"/sessions/{session_id.hex}?t=7.251#player")
    assert d.find_element(By.ID, "player").get_attribute("data-start") == "7.251"
    marker = d.find_element(By.CSS_SELECTOR, f'#session-alerts li[data-alert="{alert_id}"]')
    assert HOSTILE_TITLE in marker.text
    no_alert(d)
