"""The web console in Debian's chromium (Selenium, its chromedriver) over sessions recorded
through the real gateway to a real sshd, stored and indexed by real group members.

Two auditors: ``ann``, an admin who sees everything, and ``tom``, scoped to target
``t1``. Sessions on ``t1`` print the XSS payloads an operator could use and upload a
file named like one; a session on ``fwd`` holds a secret ``tom`` must never see.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pexpect
import pytest
from sqlalchemy import func, select

from sshtrail.db import make_engine
from sshtrail.tables import SESSIONS
from tests.support.auditors import auditor
from tests.support.browser import (
    console_running,
    needs_chromium,
    no_alert,
    problems_in_console,
    screen,
    sign_in,
)
from tests.support.cli import sshtrail
from tests.support.gateway import toml_table
from tests.support.kafka import Broker
from tests.support.recorded import Recorded
from tests.support.sshd import SshdTarget
from tests.support.waiting import wait_for

pytestmark = [pytest.mark.e2e, needs_chromium]

ANN, ANN_PASSWORD = "ann", "ann-password-1"
TOM, TOM_PASSWORD = "tom", "tom-password-1"
PAYLOADS = (
    "<script>alert('script')</script>",
    "<img src=x onerror=alert('img')>",
    "javascript:alert('link')",
)
EVIL_NAME = "<img src=x onerror=alert('file')>.txt"


@dataclass
class Console:
    url: str
    config: Path
    remote: Path  # where files were uploaded on the target


@pytest.fixture(scope="module")
def console(
    tmp_path_factory: pytest.TempPathFactory, broker: Broker, sshd: SshdTarget
) -> Iterator[Console]:
    root = tmp_path_factory.mktemp("web")
    recorded = Recorded(
        root,
        broker,
        sshd,
        settings=toml_table("[web]", login_failures=3)
        + auditor(ANN, ANN_PASSWORD, role="admin")
        + auditor(TOM, TOM_PASSWORD, targets=["t1"]),
    )
    gateway = recorded.gateway
    remote = root / "remote"
    remote.mkdir()
    local = root / "evil.txt"
    local.write_text("a file with a hostile name\n")
    batch = root / "batch"
    batch.write_text(f'put "{local}" "{remote}/{EVIL_NAME}"\n')
    runs = [
        gateway.ssh("alice:t1", "; ".join(f'echo "{p}"' for p in PAYLOADS)),
        gateway.ssh("alice:fwd", "echo other-target-secret-$((1+1))"),
        gateway.file_client("sftp", "alice:t1", "-b", str(batch), "127.0.0.1"),
    ]
    for argv in runs:
        done = subprocess.run(argv, capture_output=True, timeout=60, check=False)
        assert done.returncode == 0, done.stderr
    argv = gateway.ssh("alice:t1", tty=True)
    child = pexpect.spawn(argv[0], argv[1:], timeout=30, env={**os.environ, "TERM": "xterm"})
    child.sendline("echo needle-$((6*7))")
    child.expect("needle-42")
    time.sleep(1.5)  # the hit's moment is well after the session's start
    child.sendline("echo second-line-$((2+3)); exit")
    child.expect(pexpect.EOF)
    recorded.stored(sessions=4)
    with console_running(recorded.config, root) as url:
        yield Console(url, recorded.config, remote)


class AccessEntry(msgspec.Struct, forbid_unknown_fields=True):
    """``sshtrail access-log --json``: one entry, as docs/operations.md gives it."""

    at: dt.datetime | None  # None only in a row a database writer made unreadable
    auditor: str
    action: str
    address: str
    session: uuid.UUID | None
    detail: str
    unreadable: str | None


def access_log(console: Console, *argv: str) -> list[dict[str, Any]]:
    out = sshtrail(console.config, "access-log", "--json", "--limit", "1000", *argv).stdout
    msgspec.json.decode(out, type=list[AccessEntry])  # the documented shape, exactly
    return json.loads(out)  # type: ignore[no-any-return]


def test_auditor_signs_in_lists_filters_searches_and_the_player_shows_the_hit(
    console: Console, browser: object, tmp_path: Path
) -> None:
    from selenium.webdriver.common.by import By

    d: Any = browser
    sign_in(d, console.url, ANN, ANN_PASSWORD)
    rows = d.find_elements(By.CSS_SELECTOR, "tr.session")
    assert len(rows) == 4
    assert "fwd" in d.find_element(By.ID, "sessions").text
    d.get(f"{console.url}/sessions?target=fwd")
    assert len(d.find_elements(By.CSS_SELECTOR, "tr.session")) == 1
    d.get(f"{console.url}/sessions?sort=target&order=asc")
    targets = [
        r.find_elements(By.TAG_NAME, "td")[2].text
        for r in d.find_elements(By.CSS_SELECTOR, "tr.session")
    ]
    assert targets == sorted(targets)
    # The times are the viewer's, with the zone named.
    assert d.find_element(By.CSS_SELECTOR, "footer .zone").text
    d.get(f"{console.url}/search")
    d.find_element(By.ID, "q").send_keys("needle-42")
    d.find_element(By.ID, "search").click()
    wait_for(lambda: d.find_elements(By.ID, "count"), what="the search's answer", timeout=15)
    hits = d.find_elements(By.CSS_SELECTOR, "li.hit")
    assert hits, d.page_source
    assert "needle-42" in d.find_element(By.CSS_SELECTOR, "li.hit mark").text
    hits[-1].find_element(By.CSS_SELECTOR, "a.open").click()
    wait_for(
        lambda: "needle-42" in screen(d),
        what="the player showing the hit",
        timeout=20,
    )
    assert "second-line-5" not in screen(d)  # the screen at the hit's time, not the end
    d.save_screenshot(str(tmp_path / "player.png"))
    assert (tmp_path / "player.png").stat().st_size > 1000
    # The commands timeline and the session's fields are there; verification is ok.
    assert "ok" in d.find_element(By.ID, "verification").text
    assert "SHA256:" in d.find_element(By.ID, "signer").text
    assert problems_in_console(d) == []


def test_the_asciicast_download_plays_in_asciinema(
    console: Console, browser: object, tmp_path: Path
) -> None:
    from selenium.webdriver.common.by import By

    d: Any = browser
    sign_in(d, console.url, ANN, ANN_PASSWORD)
    d.get(f"{console.url}/search?q=needle-42&kind=output")
    d.find_elements(By.CSS_SELECTOR, "li.hit a.open")[0].click()
    link = d.find_element(By.ID, "export-asciicast").get_attribute("href")
    cookies = {c["name"]: c["value"] for c in d.get_cookies()}
    answer = httpx.get(link, cookies=cookies, timeout=30)
    assert answer.status_code == 200
    assert "attachment" in answer.headers["content-disposition"]
    cast = tmp_path / "session.cast"
    cast.write_bytes(answer.content)
    played = subprocess.run(
        [str(Path(sys.executable).parent / "asciinema"), "cat", str(cast)],
        capture_output=True,
        timeout=30,
        check=True,
    )
    assert b"needle-42" in played.stdout
    assert httpx.get(link, timeout=30, follow_redirects=False).status_code == 303  # signed out


def test_a_scoped_auditor_sees_nothing_of_another_target_and_is_logged(
    console: Console, browser: object
) -> None:
    from selenium.webdriver.common.by import By

    d: Any = browser
    sign_in(d, console.url, TOM, TOM_PASSWORD)
    listed = d.find_element(By.ID, "sessions").text
    assert "fwd" not in listed
    assert len(d.find_elements(By.CSS_SELECTOR, "tr.session")) == 3
    d.get(f"{console.url}/search?q=other-target-secret")
    assert d.find_elements(By.CSS_SELECTOR, "li.hit") == []
    d.get(f"{console.url}/sessions?target=fwd")
    assert d.find_elements(By.CSS_SELECTOR, "tr.session") == []
    # Direct URLs of the other target's session: as if it did not exist.
    with make_engine(f"sqlite:///{console.config.parent / 'store.db'}").connect() as conn:
        other = conn.execute(select(SESSIONS.c.id).where(SESSIONS.c.target == "fwd")).scalar_one()
        assert conn.execute(select(func.count()).select_from(SESSIONS)).scalar_one() == 4
    cookies = {c["name"]: c["value"] for c in d.get_cookies()}
    for path in ("", "/cast", "/export/asciicast", "/export/raw", "/export/json"):
        answer = httpx.get(f"{console.url}/sessions/{other.hex}{path}", cookies=cookies, timeout=30)
        assert answer.status_code == 404, path
        assert b"other-target-secret" not in answer.content
    for admin_page in ("/lag", "/access-log"):
        assert httpx.get(console.url + admin_page, cookies=cookies, timeout=30).status_code == 404
    entries = access_log(console, "--auditor", TOM)
    actions = {entry["action"] for entry in entries}
    assert {"login", "sessions", "search", "denied"} <= actions
    assert any(e["action"] == "search" and "other-target-secret" in e["detail"] for e in entries)
    denied = [e for e in entries if e["action"] == "denied" and e["session"]]
    assert {e["session"] for e in denied} == {str(other)}


def test_xss_payloads_and_a_hostile_file_name_are_shown_as_text(
    console: Console, browser: object
) -> None:
    from selenium.webdriver.common.by import By

    d: Any = browser
    sign_in(d, console.url, ANN, ANN_PASSWORD)
    d.get(f"{console.url}/search?q=alert")
    text = d.find_element(By.ID, "hits").text
    for payload in PAYLOADS:
        assert payload in text
    assert "onerror=alert('file')" in text  # the file's path, from the transfers
    no_alert(d)
    # No element was made from the payloads.
    assert d.find_elements(By.CSS_SELECTOR, "#hits img, #hits script") == []
    hit = next(
        h
        for h in d.find_elements(By.CSS_SELECTOR, "li.hit")
        if "<script>" in h.text and h.find_element(By.CSS_SELECTOR, ".kind").text == "output"
    )
    hit.find_element(By.CSS_SELECTOR, "a.open").click()
    wait_for(
        lambda: "<script>" in screen(d),
        what="the payloads on the player's screen",
        timeout=20,
    )
    no_alert(d)
    d.get(f"{console.url}/sessions")
    sftp = next(row for row in d.find_elements(By.CSS_SELECTOR, "tr.session") if "sftp" in row.text)
    sftp.find_element(By.CSS_SELECTOR, "a.open").click()
    assert EVIL_NAME in d.find_element(By.ID, "operations").text  # in place of the player
    no_alert(d)
    assert d.find_elements(By.CSS_SELECTOR, "#file-session img") == []
    assert problems_in_console(d) == []


def test_admin_pages_and_the_access_log_of_everything_done(
    console: Console, browser: object
) -> None:
    from selenium.webdriver.common.by import By

    d: Any = browser
    sign_in(d, console.url, ANN, ANN_PASSWORD)
    d.get(f"{console.url}/search?q=needle-42&kind=output")
    d.find_elements(By.CSS_SELECTOR, "li.hit a.open")[0].click()
    wait_for(lambda: "needle-42" in screen(d), what="the replay", timeout=20)
    link = d.find_element(By.ID, "export-raw").get_attribute("href")
    cookies = {c["name"]: c["value"] for c in d.get_cookies()}
    assert b"needle-42" in httpx.get(link, cookies=cookies, timeout=30).content
    d.get(f"{console.url}/access-log")
    table = d.find_element(By.ID, "access-log").text
    assert "login" in table
    d.get(f"{console.url}/lag")
    assert d.find_element(By.ID, "lag")
    actions = {entry["action"] for entry in access_log(console, "--auditor", ANN)}
    assert {
        "login",
        "sessions",
        "search",
        "view",
        "replay",
        "export",
        "access-log",
        "lag",
    } <= actions
    d.find_element(By.ID, "logout").click()
    wait_for(lambda: "/login" in d.current_url, what="signed out", timeout=15)
    d.get(f"{console.url}/sessions")
    assert "/login" in d.current_url
