"""Console sign-ins that survive, in Debian's chromium: an auditor signs in, ``sshtrail
web`` is restarted (a new process on the same port and store), and they are still signed
in; ``sshtrail web revoke`` then signs them out at their next request."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import tomli_w

from sshtrail.broker import free_port
from sshtrail.passwords import hash_password
from tests.support.browser import listening, needs_chromium, problems_in_console, sign_in
from tests.support.cli import sshtrail
from tests.support.oidcprovider import olga_on_t1_and_t2
from tests.support.waiting import wait_for

pytestmark = [pytest.mark.e2e, needs_chromium, pytest.mark.timeout(180)]

AUD, AUD_PASSWORD = "aud", "aud-password-1"


class Console:
    """``sshtrail web`` on one port, restartable."""

    def __init__(self, config: Path, root: Path) -> None:
        self.config, self._root = config, root
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        argv = ["-m", "sshtrail", "--config", str(self.config), "web", "--port", str(self.port)]
        self._process = subprocess.Popen(
            [sys.executable, *argv],
            cwd=self._root,
            stdout=subprocess.DEVNULL,
            stderr=(self._root / "web.log").open("ab"),
        )
        wait_for(lambda: listening(self.port), what="the console listening", timeout=30)

    def stop(self) -> None:
        if self._process is None:
            return
        self._process.terminate()
        try:
            self._process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait(timeout=15)
        self._process = None
        wait_for(lambda: not listening(self.port), what="the console stopped", timeout=15)


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Console]:
    root = tmp_path_factory.mktemp("signins")
    store_url = f"sqlite:///{root / 'store.db'}"
    olga_on_t1_and_t2(store_url)
    settings: dict[str, Any] = {
        "state_dir": str(root / "state"),
        "database": {"url": store_url},
        "search": {"url": f"sqlite:///{root / 'search.db'}"},
        "auditors": [
            {"name": AUD, "password_hash": hash_password(AUD_PASSWORD), "targets": ["t1"]}
        ],
    }
    config = root / "sshtrail.toml"
    config.write_text(tomli_w.dumps(settings))
    running = Console(config, root)
    running.start()
    try:
        yield running
    finally:
        running.stop()


def test_a_restart_signs_nobody_out_and_a_revocation_does(browser: Any, console: Console) -> None:
    from selenium.webdriver.common.by import By

    sign_in(browser, console.url, AUD, AUD_PASSWORD)
    assert browser.find_element(By.ID, "who").text == AUD
    assert "echo on t1" in browser.page_source

    console.stop()
    console.start()
    browser.get(f"{console.url}/sessions")
    assert browser.current_url == f"{console.url}/sessions"  # not sent to sign in
    assert browser.find_element(By.ID, "who").text == AUD
    assert "echo on t1" in browser.page_source
    assert "echo on t2" not in browser.page_source  # the rights granted at sign-in

    listed = json.loads(sshtrail(console.config, "web", "sessions", "--json").stdout)
    assert [(entry["auditor"], entry["state"]) for entry in listed] == [(AUD, "active")]
    done = sshtrail(console.config, "web", "revoke", "--user", AUD, "--reason", "laptop lost")
    assert f"of {AUD}" in done.stdout.decode()

    browser.get(f"{console.url}/sessions")
    wait_for(lambda: "/login" in browser.current_url, what="signed out", timeout=15)
    assert browser.find_elements(By.ID, "who") == []
    log = sshtrail(console.config, "access-log", "--action", "revoke", "--json").stdout
    assert [entry["detail"].endswith("laptop lost") for entry in json.loads(log)] == [True]
    assert problems_in_console(browser) == []
