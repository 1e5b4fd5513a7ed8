"""A real browser for the web console's tests: Debian's chromium through its chromedriver
(Selenium), never a browser or driver downloaded at run time."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from sshtrail.broker import free_port
from tests.support.services import unavailable
from tests.support.waiting import wait_for

#: Marks the tests that drive the browser: skipped where it is missing, failed in CI
#: (``CI=true``), where every service must be there (the ``chromium_installed`` fixture).
needs_chromium = pytest.mark.usefixtures("chromium_installed")


def require_chromium() -> None:
    if not (shutil.which("chromium") and shutil.which("chromedriver")):
        unavailable(
            "Debian's chromium and chromium-driver are not installed (make system-packages)"
        )


def listening(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(0.5)
        return probe.connect_ex(("127.0.0.1", port)) == 0


def start_console(config: Path, cwd: Path) -> tuple[subprocess.Popen[bytes], str]:
    """``sshtrail web`` on a free port with ``config``; the process and its base URL."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "sshtrail", "--config", str(config), "web", "--port", str(port)],
        cwd=cwd,
        stdout=subprocess.DEVNULL,
        stderr=(cwd / f"web-{port}.log").open("wb"),
    )
    wait_for(lambda: listening(port), what="the console listening", timeout=30)
    return process, f"http://127.0.0.1:{port}"


@contextmanager
def console_running(config: Path, cwd: Path) -> Iterator[str]:
    """:func:`start_console`'s base URL while the block runs; the console stopped after."""
    process, url = start_console(config, cwd)
    try:
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)


def chromium() -> Any:
    """A headless chromium session with its console log kept (for CSP reports)."""
    require_chromium()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--window-size=1400,1000",
    ):
        options.add_argument(argument)
    options.binary_location = shutil.which("chromium") or "chromium"
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    # Debian's driver, never one Selenium Manager would download.
    driver = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)
    driver.set_page_load_timeout(30)
    return driver


def sign_in(driver: object, base_url: str, name: str, password: str) -> None:
    from selenium.webdriver.common.by import By

    d: Any = driver
    d.delete_all_cookies()
    d.get(f"{base_url}/login")
    d.find_element(By.ID, "name").send_keys(name)
    d.find_element(By.ID, "password").send_keys(password)
    d.find_element(By.ID, "sign-in").click()
    wait_for(lambda: "/sessions" in d.current_url, what="signed in", timeout=15)


def screen(driver: object) -> str:
    """The text on the player's terminal."""
    from selenium.webdriver.common.by import By

    d: Any = driver
    return " ".join(e.text for e in d.find_elements(By.CSS_SELECTOR, ".ap-term-text"))


def problems_in_console(driver: object) -> list[str]:
    """What the browser's console reported: CSP violations and script errors."""
    d: Any = driver
    return [
        entry["message"]
        for entry in d.get_log("browser")
        if entry["level"] == "SEVERE" or "Content Security Policy" in entry["message"]
    ]


def no_alert(driver: object) -> None:
    from selenium.common.exceptions import NoAlertPresentException

    d: Any = driver
    with pytest.raises(NoAlertPresentException):
        d.switch_to.alert  # noqa: B018 (an alert would mean a payload ran)


def text_of(driver: object, element_id: str) -> str:
    """The text of the element ``element_id`` now; "" while there is none, or while the
    page's live update is replacing it (the element found went stale before it was read)."""
    from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
    from selenium.webdriver.common.by import By

    d: Any = driver
    try:
        return str(d.find_element(By.ID, element_id).text)
    except (NoSuchElementException, StaleElementReferenceException):
        return ""
