"""The console's Active sessions page in Debian's chromium (Selenium), with real ssh
sessions through a real gateway to a real sshd, recorded by a real store member: a
session opened while the page is open appears on it without a reload and leaves it when
it ends; its Watch button opens its live view; its Terminate button, with a reason, ends
the real session through the gateway.

The JSON the page polls, its scoping and its bad parameters are
tests/integration/test_web_active.py.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pexpect
import pytest

from tests.support.auditors import auditor
from tests.support.browser import (
    console_running,
    needs_chromium,
    no_alert,
    problems_in_console,
    sign_in,
    text_of,
)
from tests.support.controlstack import Stack
from tests.support.kafka import Broker
from tests.support.sshd import SshdTarget
from tests.support.waiting import wait_for

pytestmark = [pytest.mark.e2e, needs_chromium]

ANN, ANN_PASSWORD = "ann", "ann-password-1"
REASON = "seen from the active list"


@pytest.fixture
def stack(tmp_path: Path, broker: Broker, sshd: SshdTarget) -> Iterator[Stack]:
    made = Stack(tmp_path, broker, sshd)
    made.start()
    made.config.write_text(made.config.read_text() + auditor(ANN, ANN_PASSWORD, terminate=True))
    yield made
    made.stop()


def row_of(d: Any, session_id: str) -> list[Any]:
    from selenium.webdriver.common.by import By

    return list(d.find_elements(By.CSS_SELECTOR, f'tr.active-session[data-session="{session_id}"]'))


def refreshed(d: Any) -> int:
    """When the list was last refreshed (the browser's milliseconds), 0 before the first."""
    from selenium.webdriver.common.by import By

    return int(d.find_element(By.ID, "active").get_attribute("data-refreshed") or 0)


def not_reloaded(d: Any) -> bool:
    return bool(d.execute_script("return window.sshtrailNotReloaded === true;"))


def test_open_sessions_come_and_go_without_a_reload_and_terminate_ends_one(
    stack: Stack, browser: object, tmp_path: Path
) -> None:
    from selenium.webdriver.common.by import By

    d: Any = browser
    with console_running(stack.config, tmp_path) as url:
        sign_in(d, url, ANN, ANN_PASSWORD)
        d.find_element(By.CSS_SELECTOR, 'nav a[href="/active"]').click()
        wait_for(
            lambda: "No session you may see is open now." in text_of(d, "active"),
            what="the empty list",
            timeout=20,
        )
        d.execute_script("window.sshtrailNotReloaded = true;")

        child, session_id = stack.active_session(stack.one)
        wait_for(
            lambda: bool(row_of(d, session_id)), what="the new session on the page", timeout=20
        )
        row = row_of(d, session_id)[0]
        assert row.find_element(By.CSS_SELECTOR, "td.operator").text == "alice"
        assert row.find_element(By.CSS_SELECTOR, "td.target").text == "t1"
        assert row.find_element(By.CSS_SELECTOR, "td.kind").text == "shell"
        assert row.find_element(By.CSS_SELECTOR, "time").get_attribute("datetime")
        assert not_reloaded(d)
        child.sendline("exit")
        child.expect(pexpect.EOF)
        wait_for(lambda: not row_of(d, session_id), what="the ended session gone", timeout=30)
        assert not_reloaded(d)
        no_alert(d)

        child, session_id = stack.active_session(stack.one)
        wait_for(lambda: bool(row_of(d, session_id)), what="the second session", timeout=20)
        row_of(d, session_id)[0].find_element(By.CSS_SELECTOR, "a.watch").click()
        wait_for(
            lambda: d.current_url.endswith(f"/sessions/{session_id}"),
            what="the live view",
            timeout=10,
        )
        assert d.find_element(By.ID, "live-note")
        d.back()
        wait_for(lambda: bool(row_of(d, session_id)), what="the list again", timeout=20)
        row = row_of(d, session_id)[0]
        d.execute_script("window.sshtrailNotReloaded = true;")
        typed_at = refreshed(d)
        row.find_element(By.NAME, "reason").send_keys(REASON)
        wait_for(
            lambda: refreshed(d) > typed_at,
            what="a refresh while the reason is typed",
            timeout=10,
        )
        row = row_of(d, session_id)[0]  # the same row, the reason kept
        assert row.find_element(By.NAME, "reason").get_attribute("value") == REASON
        assert not_reloaded(d)
        d.save_screenshot(str(tmp_path / "active.png"))
        row.find_element(By.CSS_SELECTOR, "button.terminate").click()
        wait_for(lambda: d.find_elements(By.ID, "outcome"), what="the outcome", timeout=20)
        assert f"terminated by {ANN}: {REASON}" in d.find_element(By.ID, "outcome").text
        child.expect(f"terminated by {ANN}: {REASON}")
        child.expect(pexpect.EOF)
        d.get(f"{url}/active")
        wait_for(
            lambda: "No session you may see is open now." in text_of(d, "active"),
            what="the terminated session gone from the list",
            timeout=30,
        )
        no_alert(d)
        assert problems_in_console(d) == []

    entries = stack.run("access-log", "--json", "--auditor", ANN, check=True).stdout
    actions = [(e["action"], e["session"], e["detail"]) for e in json.loads(entries)]
    assert ("active", None, "") in actions
    assert ("watch", str(uuid.UUID(session_id)), "") in actions
    assert ("terminate", str(uuid.UUID(session_id)), REASON) in actions
