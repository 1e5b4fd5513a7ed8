"""Moderating from the web console: a real gateway holds a session until a moderator
joins from a browser, and holds the operator's input while none is present.

The real OpenSSH client through a real gateway to a real sshd; a ``[[moderation]]``
table covers alice's sessions to t1 and names the console group ``dba``; the console,
one process on the shared control topic, is driven by real Chromium. An auditor who is
not a moderator watches and does not start the session; a moderator joining starts it;
their tab closed, what the operator types waits; their return lets it run, once. Checked
on the target (files a command makes), on the operator's terminal and in the access log.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pexpect
import pytest

from sshtrail.passwords import hash_password
from tests.support.browser import (
    chromium,
    needs_chromium,
    problems_in_console,
    sign_in,
    start_console,
)
from tests.support.controlstack import Stack
from tests.support.gateway import toml_value
from tests.support.kafka import Broker
from tests.support.sshd import SshdTarget
from tests.support.waiting import wait_for

pytestmark = pytest.mark.e2e

RULES = """
[[moderation]]
name = "payments"
operators = ["alice"]
targets = ["t1"]
moderators = ["group:dba"]
count = 1
on_leave = "pause"
wait_s = 120
"""
#: mona moderates (group dba); walt may watch t1 but moderates nothing.
AUDITORS = {"mona": 'groups = ["dba"]\n', "walt": 'targets = ["t1"]\n'}


@pytest.fixture
def stack(tmp_path: Path, broker: Broker, sshd: SshdTarget) -> Iterator[Stack]:
    rules = tmp_path / "policy.toml"
    rules.write_text(RULES)
    made = Stack(
        tmp_path, broker, sshd, gateway_tail=f"[policy]\nfile = {toml_value(str(rules))}\n"
    )
    made.config.write_text(
        made.config.read_text()
        + "".join(
            f'[[auditors]]\nname = "{name}"\n{extra}'
            + f'password_hash = "{hash_password(name + "-password-1")}"\n'
            for name, extra in AUDITORS.items()
        )
    )
    made.start()
    yield made
    made.stop()


def moderator_mode(driver: Any, url: str, session_id: str) -> None:
    """Open the session's page in moderator mode, and wait for its first answer."""
    from selenium.webdriver.common.by import By

    driver.get(f"{url}/sessions/{session_id}?moderate=1")
    wait_for(
        lambda: driver.find_element(By.ID, "moderation").get_attribute("data-state") != "joining",
        what="the console's answer to the join",
        timeout=10,
    )


def standing(driver: Any) -> tuple[str, str]:
    from selenium.webdriver.common.by import By

    element = driver.find_element(By.ID, "moderation")
    return str(element.get_attribute("data-state")), element.text


@needs_chromium
def test_a_moderator_in_the_console_starts_pauses_and_resumes_a_moderated_session(
    stack: Stack, tmp_path: Path
) -> None:
    from selenium.webdriver.common.by import By

    process, url = start_console(stack.config, tmp_path)
    before, held = (Path("/tmp") / f"mod-{uuid.uuid4().hex[:12]}" for _ in range(2))
    argv = stack.two.ssh("alice:t1", tty=True)
    child = pexpect.spawn(argv[0], argv[1:], timeout=30, env={**os.environ, "TERM": "xterm"})
    walt: Any = chromium()
    mona: Any = None
    try:
        child.expect("waiting for a moderator")

        # walt finds the session on the Moderation page and watches it: he does not count.
        sign_in(walt, url, "walt", "walt-password-1")
        walt.get(f"{url}/moderation")
        rows: list[Any] = []

        def listed() -> bool:
            rows[:] = walt.find_elements(By.CSS_SELECTOR, "#needing tr.moderated")
            return bool(rows)

        wait_for(listed, what="the waiting session on the open Moderation page", timeout=20)
        assert "alice" in rows[0].text
        assert "0 of 1" in rows[0].text
        session_id = str(rows[0].get_attribute("data-session"))
        link = rows[0].find_element(By.CSS_SELECTOR, "a.join")
        assert link.get_attribute("href").endswith(f"/sessions/{session_id}?moderate=1")
        link.click()
        wait_for(
            lambda: standing(walt)[0] == "not-counted",
            what="walt's page answered",
            timeout=10,
        )
        assert "does not count you" in standing(walt)[1]
        time.sleep(2 * 1.0 + 1)  # heartbeats that would have started it by now
        assert b"the session starts" not in (child.before or b"")
        with pytest.raises(pexpect.TIMEOUT):
            child.expect("the session starts", timeout=1)

        # mona, of group dba, joins from the page's link: the session starts.
        mona = chromium()
        sign_in(mona, url, "mona", "mona-password-1")
        mona.get(f"{url}/moderation")
        mona.find_element(
            By.CSS_SELECTOR, f'#needing tr[data-session="{session_id}"] a.join'
        ).click()
        child.expect("the session starts", timeout=10)
        wait_for(lambda: standing(mona)[0] == "counted", what="mona counted", timeout=10)
        assert "counts you as a moderator" in standing(mona)[1]
        assert problems_in_console(mona) == []
        child.sendline("exec bash --norc --noprofile")
        child.sendline("PS1='READY> '")
        child.expect("READY> ")
        child.sendline(f"touch {before}")
        wait_for(before.exists, what="a command run while mona moderates", timeout=10)

        # mona's tab goes away: within 5 s, what alice types is held.
        mona.quit()
        mona = None
        gone = time.monotonic()
        child.expect("What you type is held", timeout=8)
        assert time.monotonic() - gone < 5.0
        child.sendline(f"echo ran >> {held}")
        time.sleep(2.0)
        assert not held.exists()

        # mona is back: the held line runs, once.
        mona = chromium()
        sign_in(mona, url, "mona", "mona-password-1")
        moderator_mode(mona, url, session_id)
        child.expect("input flows again", timeout=10)
        wait_for(held.exists, what="the held command run once mona is back", timeout=10)
        time.sleep(1.0)
        assert held.read_text() == "ran\n"

        # walt leaves the page (its beacon says so); mona ends her moderation by the
        # button: alice's input is held again.
        walt.get(f"{url}/moderation")
        mona.find_element(By.ID, "end-moderation").click()
        assert standing(mona)[0] == "left"
        child.expect("What you type is held", timeout=8)
        assert problems_in_console(mona) == []

        def logged() -> list[tuple[str, str, str]]:
            entries = json.loads(stack.run("access-log", "--json", check=True).stdout)
            return [
                (e["auditor"], e["action"], e["detail"])
                for e in reversed(entries)  # newest first: as they happened
                if e["action"] in ("moderate", "moderate-end")
                and e["session"] == str(uuid.UUID(session_id))
            ]

        joined = "joined: rule payments, gateway gw-two"
        expected = [
            ("walt", "moderate", joined),
            ("mona", "moderate", joined),
            ("mona", "moderate-end", "moderation ended (no heartbeat)"),  # the closed tab
            ("mona", "moderate", joined),
        ]
        wait_for(
            lambda: (
                sorted(logged()[4:])
                == [("mona", "moderate-end", "left"), ("walt", "moderate-end", "left")]
            ),
            what="the two leaves in the access log",
            timeout=10,
        )
        assert logged()[:4] == expected  # and no line for any heartbeat
    finally:
        for driver in (walt, mona):
            if driver is not None:
                driver.quit()
        child.close(force=True)
        process.terminate()
        process.wait(timeout=30)
        before.unlink(missing_ok=True)
        held.unlink(missing_ok=True)
