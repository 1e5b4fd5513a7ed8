"""The console's Locks page in Debian's chromium (Selenium), on a real Kafka broker: a lock
made from a shell appears on the open page without a reload, its hostile operator name
shown as text; the page's own form locks, and a row's Unlock button unlocks.

No gateway runs here: requests go unanswered but stay on the control topic, which is
what the page lists. Gateways applying locks are tests/e2e/test_control.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine

from sshtrail.passwords import hash_password
from tests.support.browser import (
    console_running,
    needs_chromium,
    no_alert,
    problems_in_console,
    sign_in,
    text_of,
)
from tests.support.cli import sshtrail
from tests.support.consumers import create_topics
from tests.support.gateway import toml_value
from tests.support.kafka import Broker
from tests.support.waiting import wait_for

pytestmark = [
    pytest.mark.e2e,
    needs_chromium,
    pytest.mark.parametrize("database_url", ["sqlite"], indirect=True),
]

ANN, ANN_PASSWORD = "ann", "ann-password-1"
HOSTILE = "<img src=x onerror=alert('op')>"


@pytest.fixture
def config(tmp_path: Path, broker: Broker, topic_name: str, store_engine: Engine) -> Path:
    create_topics(broker.bootstrap_servers, topic_name)
    path = tmp_path / "sshtrail.toml"
    url = store_engine.url.render_as_string(hide_password=False)
    path.write_text(
        f"state_dir = {toml_value(str(tmp_path / 'state'))}\n"
        f"[kafka]\nbootstrap_servers = {toml_value(broker.bootstrap_servers)}\n"
        f"[control]\ntopic = {toml_value(topic_name)}\n"
        f"[database]\nurl = {toml_value(url)}\n"
        f"[search]\nurl = {toml_value(url)}\n"
        f'[[auditors]]\nname = "{ANN}"\nrole = "admin"\n'
        f"password_hash = {toml_value(hash_password(ANN_PASSWORD))}\n"
    )
    return path


def test_locks_listed_made_and_lifted_from_the_page(
    browser: object, config: Path, tmp_path: Path
) -> None:
    with console_running(config, tmp_path) as console_url:
        locks_listed_made_and_lifted(browser, console_url, config)


def locks_listed_made_and_lifted(browser: object, console_url: str, config: Path) -> None:
    from selenium.webdriver.common.by import By

    d: Any = browser
    sign_in(d, console_url, ANN, ANN_PASSWORD)
    d.get(f"{console_url}/locks")
    assert "No operator is locked." in d.find_element(By.ID, "locks").text
    d.execute_script("window.sshtrailNotReloaded = true;")

    sshtrail(config, "lock", HOSTILE, "--reason", "from a shell", "--wait", "1", check=False)
    wait_for(
        lambda: HOSTILE in text_of(d, "locks"),
        what="the shell's lock on the open page",
        timeout=20,
    )
    assert d.execute_script("return window.sshtrailNotReloaded === true;")
    no_alert(d)

    form = d.find_element(By.ID, "lock-form")
    form.find_element(By.NAME, "operator").send_keys("alice")
    form.find_element(By.NAME, "reason").send_keys("incident 7")
    form.find_element(By.NAME, "end_sessions").click()
    form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    wait_for(lambda: "No gateway answered" in d.page_source, what="the lock sent", timeout=20)
    d.get(f"{console_url}/locks")
    row = d.find_element(By.CSS_SELECTOR, 'tr.lock[data-operator="alice"]')
    assert "incident 7" in row.text
    assert "(sessions ended)" in row.text

    row.find_element(By.NAME, "reason").send_keys("cleared")
    row.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    wait_for(lambda: "No gateway answered" in d.page_source, what="the unlock sent", timeout=20)
    d.get(f"{console_url}/locks")
    assert d.find_elements(By.CSS_SELECTOR, 'tr.lock[data-operator="alice"]') == []
    assert HOSTILE in d.find_element(By.ID, "locks").text
    no_alert(d)
    assert problems_in_console(d) == []
