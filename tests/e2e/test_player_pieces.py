"""The session page plays a large recording in pieces, in Debian's chromium: a still of
the first screen before play, only the first piece fetched at open, only the piece at
``?t=`` when opened at a search hit's moment, and the piece for the time a seek asks.

The recording (many pieces of terminal text) is written by the store's own writer to
a real SQLite store read by a real ``sshtrail web``; which pieces the page fetched is
what the browser's resource timing lists and the console's access log has."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from consumer.messages import Received
from consumer.store import StoreWriter
from sshtrail import migrate
from sshtrail.db import make_engine
from sshtrail.passwords import hash_password
from sshtrail.wire import decode_chunk
from tests.support.browser import (
    chromium,
    console_running,
    needs_chromium,
    problems_in_console,
    screen,
    sign_in,
)
from tests.support.cli import sshtrail
from tests.support.recordings import SIGNER, streamed_recording
from tests.support.waiting import wait_for

pytestmark = [pytest.mark.e2e, needs_chromium]

PASSWORD = "ann-password-1"
#: 64 KiB chunks of build-log text, 1 ms apart: 8 to a piece, so about 12 pieces.
CHUNKS = 100


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str, Path]]:
    """(the console's URL, the big session's id, its config)."""
    root = tmp_path_factory.mktemp("pieces")
    store_url = f"sqlite:///{root / 'store.db'}"
    migrate.upgrade(store_url)
    engine = make_engine(store_url)
    session_id, messages = streamed_recording(CHUNKS, 64 << 10, text=True)
    now = dt.datetime.now(dt.UTC)
    StoreWriter(engine, dt.timedelta(hours=1)).write(
        [Received(decode_chunk(m), 0, i, now) for i, m in enumerate(messages)]
    )
    engine.dispose()
    key = root / "recording_ed25519_key"
    key.with_suffix(".pub").write_bytes(
        SIGNER.public_key().public_bytes(Encoding.OpenSSH, PublicFormat.OpenSSH)
    )
    config = root / "sshtrail.toml"
    config.write_text(
        f'state_dir = "{root}/state"\n[database]\nurl = "{store_url}"\n'
        f'[gateway]\nsigning_key = "{key}"\n[search]\nurl = "sqlite:///{root / "s.db"}"\n'
        f'[[auditors]]\nname = "ann"\nrole = "admin"\n'
        f'password_hash = "{hash_password(PASSWORD)}"\n'
    )
    with console_running(config, root) as url:
        yield url, session_id.hex, config


@pytest.fixture
def browser() -> Iterator[Any]:
    driver = chromium()
    try:
        yield driver
    finally:
        driver.quit()


def fetched(driver: Any) -> list[str]:
    """The pieces URLs the page fetched so far: "index" or the piece's number."""
    names: list[str] = driver.execute_script(
        "return performance.getEntriesByType('resource').map(e => e.name)"
    )
    return [
        name.split("/pieces")[1].lstrip("/").split("?")[0] or "index"
        for name in names
        if "/pieces" in name
    ]


def index(driver: Any, url: str, session: str) -> dict[str, Any]:
    answer: dict[str, Any] = driver.execute_script(
        f"return await (await fetch('{url}/sessions/{session}/pieces?idle=')).json()"
    )
    return answer


def test_a_large_recording_opens_on_its_first_piece_and_seeks_by_piece(
    console: tuple[str, str, Path], browser: Any
) -> None:
    url, session, config = console
    sign_in(browser, url, "ann", PASSWORD)
    browser.get(f"{url}/sessions/{session}?idle=")
    # The still: the first screen's text, before play, not a black box.
    wait_for(lambda: "Building" in screen(browser), what="the first screen", timeout=30)
    pieces = index(browser, url, session)["segments"]
    assert len(pieces) >= 10
    assert sorted(set(fetched(browser))) == ["0", "index"]

    # Opened at a moment deep in the recording: that piece only.
    middle = len(pieces) // 2
    at = (pieces[middle]["start"] + pieces[middle + 1]["start"]) / 2
    browser.get(f"{url}/sessions/{session}?idle=&t={at:.3f}")
    wait_for(lambda: "Building" in screen(browser), what="the screen at t", timeout=30)
    assert sorted(set(fetched(browser)) - {"index"}) == [str(middle)]

    # A seek to another moment fetches the piece holding it.
    later = len(pieces) - 2
    browser.execute_script(
        "window.sshtrailPlayer.seek(arguments[0])", pieces[later]["start"] + 0.0005
    )
    wait_for(lambda: str(later) in fetched(browser), what="the piece the seek needs", timeout=30)
    near = {str(middle), str(middle + 1), str(later), str(later + 1)}  # and the next ahead
    assert set(fetched(browser)) - {"index"} <= near
    assert problems_in_console(browser) == []

    # The console's access log has each piece sent, as the replay it is.
    done = sshtrail(config, "access-log", "--json", "--limit", "1000")
    details = [entry["detail"] for entry in json.loads(done.stdout)]
    assert f"piece {middle}" in details
    assert f"piece {later}" in details
