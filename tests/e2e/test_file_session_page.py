"""An SFTP session's page in Debian's chromium (Selenium): the real OpenSSH ``sftp``
uploads a file through the real gateway to the real ``sshd``, the real store group
reads its operations, and ``sshtrail web`` shows them instead of a player: the file
with its SHA-256, and a download link that saves the file byte-exact.
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, func, select

from sshtrail.passwords import hash_password
from sshtrail.tables import SESSIONS
from tests.support.browser import console_running, needs_chromium, problems_in_console, sign_in
from tests.support.consumers import start_member, write_config
from tests.support.gateway import GatewayProcess
from tests.support.kafka import Broker
from tests.support.sshd import SshdTarget
from tests.support.waiting import wait_for

pytestmark = [
    pytest.mark.e2e,
    needs_chromium,
    pytest.mark.parametrize("database_url", ["sqlite"], indirect=True),
]

ANN, PASSWORD = "ann", "ann-password-1"


def _uploaded(tmp_path: Path, broker: Broker, sshd: SshdTarget, url: str) -> tuple[Path, bytes]:
    """Settings over a store holding one ``sftp`` upload, its operations read; its bytes."""
    content = os.urandom(200_000) + b"\x00\r\n<script>"
    (tmp_path / "report.bin").write_bytes(content)
    (tmp_path / "remote").mkdir()
    gateway = GatewayProcess(tmp_path / "gw", broker.bootstrap_servers, sshd)
    gateway.start()
    batch = tmp_path / "batch"
    batch.write_text(f"put {tmp_path}/report.bin {tmp_path}/remote/report.bin\n")
    try:
        argv = gateway.file_client("sftp", "alice:t1", "-b", str(batch), "127.0.0.1")
        done = subprocess.run(argv, capture_output=True, timeout=120, check=False)
        assert done.returncode == 0, done.stderr
    finally:
        gateway.stop()
    config = write_config(tmp_path / "sshtrail.toml", broker.bootstrap_servers, gateway.topic, url)
    config.write_text(
        config.read_text()
        + "[transfers]\ncontent_export = true\n"
        + f'[[auditors]]\nname = "{ANN}"\npassword_hash = "{hash_password(PASSWORD)}"\n'
        + "export_files = true\n"
    )
    return config, content


def test_an_uploaded_file_is_listed_with_its_hash_and_downloads_byte_exact(
    browser: object,
    tmp_path: Path,
    broker: Broker,
    sshd: SshdTarget,
    store_engine: Engine,
) -> None:
    from selenium.webdriver.common.by import By

    url = store_engine.url.render_as_string(hide_password=False)
    config, content = _uploaded(tmp_path, broker, sshd, url)

    def read() -> bool:
        with store_engine.connect() as conn:
            query = select(func.count()).where(SESSIONS.c.transfers == "done")
            return conn.execute(query).scalar_one() == 1

    member = start_member(config, "store")
    try:
        wait_for(read, what="the sftp session stored and its operations read", timeout=120)
    finally:
        member.stop(signal.SIGTERM)
    with store_engine.connect() as conn:
        session = conn.execute(select(SESSIONS.c.id)).scalar_one().hex
    saved = tmp_path / "downloads"
    saved.mkdir()
    d: Any = browser
    d.execute_cdp_cmd("Page.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(saved)})
    with console_running(config, tmp_path) as console_url:
        sign_in(d, console_url, ANN, PASSWORD)
        d.get(f"{console_url}/sessions/{session}")
        assert not d.find_elements(By.ID, "player")
        ops = [
            row.get_attribute("data-op")
            for row in d.find_elements(By.CSS_SELECTOR, "#operations tr[data-op]")
        ]
        assert "upload" in ops
        [row] = d.find_elements(By.CSS_SELECTOR, "#files tr[data-file]")
        digest = hashlib.sha256(content).hexdigest()
        assert digest in row.text
        assert "to the target" in row.text
        assert str(len(content)) in row.text
        assert "report.bin" in row.text
        row.find_element(By.CSS_SELECTOR, "a.file-download").click()
        target = saved / "report.bin"
        wait_for(target.exists, what="the download saved", timeout=30)
        assert target.read_bytes() == content
        assert problems_in_console(d) == []
