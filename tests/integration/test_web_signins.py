"""Console sign-ins kept in the store (consumer/web/signins.py), on SQLite and PostgreSQL:
only the token's hash is stored, a restart or a second console process serves the same
sign-in, expiry and idle timeout end it, ``sshtrail web revoke`` ends it at the next
request, and forged or garbage cookies sign nobody in."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select
from starlette.testclient import TestClient

from consumer.web.app import create_app
from consumer.web.auth import Auditor
from consumer.web.signins import SEEN_EVERY_S, SignIns
from sshtrail.cli.main import main
from sshtrail.scope import Scope
from sshtrail.tables import ACCESS_LOG, CONSOLE_SESSIONS
from tests.integration.test_web_http import STATE_DIR, settings_for, sign_in
from tests.support.kafka import KafkaCluster

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

START = dt.datetime(2026, 12, 6, 9, 0, tzinfo=dt.UTC)
ANN = Auditor("ann", "admin", Scope(), "password")


def url_of(engine: Engine) -> str:
    return str(engine.url.render_as_string(hide_password=False))


@pytest.fixture
def console(store_engine: Engine, broker: KafkaCluster) -> Iterator[TestClient]:
    with another_console(store_engine, broker.bootstrap_servers) as c:
        yield c


def another_console(store_engine: Engine, servers: str, **web: Any) -> TestClient:
    """A second console process on the same store (or the first one, restarted)."""
    return TestClient(
        create_app(settings_for(url_of(store_engine), servers, **web)), base_url="http://127.0.0.1"
    )


class Clock:
    def __init__(self) -> None:
        self.at = START

    def __call__(self) -> dt.datetime:
        return self.at

    def passes(self, seconds: float) -> None:
        self.at += dt.timedelta(seconds=seconds)


def test_only_the_tokens_hash_is_stored(console: TestClient, store_engine: Engine) -> None:
    assert sign_in(console, "ann").status_code == 303
    token = console.cookies["sshtrail_session"]
    with store_engine.connect() as conn:
        row = conn.execute(select(CONSOLE_SESSIONS)).mappings().one()
    raw = base64.urlsafe_b64decode(token + "=")
    assert len(raw) == 32
    assert row["token_hash"] == hashlib.sha256(raw).digest()
    stored = repr(dict(row))
    assert token not in stored
    assert raw.hex() not in stored
    assert token.encode() not in row["token_hash"]
    assert raw not in row["token_hash"]
    assert (row["auditor"], row["via"], row["rights"]["role"]) == ("ann", "password", "admin")
    assert row["idle_s"] == 30 * 60
    assert row["expires"] - row["created"] == dt.timedelta(hours=8)


def test_a_restart_or_another_console_serves_the_same_sign_in_and_sign_out_ends_it_in_all(
    console: TestClient, store_engine: Engine, broker: KafkaCluster
) -> None:
    assert sign_in(console, "ann").status_code == 303
    cookie = console.cookies["sshtrail_session"]
    with another_console(store_engine, broker.bootstrap_servers) as other:
        other.cookies.set("sshtrail_session", cookie)
        page = other.get("/sessions", follow_redirects=False)
        assert page.status_code == 200
        token = re.search(r'name="csrf" value="([^"]+)"', page.text)
        assert token is not None  # the same CSRF token in every process
        assert token[1] in console.get("/sessions").text
        assert (
            other.post("/logout", data={"csrf": token[1]}, follow_redirects=False).status_code
            == 303
        )
    assert console.get("/sessions", follow_redirects=False).status_code == 303
    with store_engine.connect() as conn:
        row = conn.execute(select(CONSOLE_SESSIONS)).mappings().one()
    assert (row["revoked_by"], row["revoked_reason"]) == ("ann", "signed out")


def test_a_sign_in_ends_at_its_lifetime_however_busy(store_engine: Engine) -> None:
    clock = Clock()
    signins = SignIns(store_engine, idle_s=600, lifetime_s=3600, now=clock)
    token = signins.create(ANN)
    for _ in range(11):
        clock.passes(300)
        assert signins.get(token) is not None
    clock.passes(300)
    assert signins.get(token) is None  # 3600 s after it began, used every 300 s


def test_a_sign_in_ends_when_idle_and_last_use_is_written_once_a_minute(
    store_engine: Engine,
) -> None:
    clock = Clock()
    signins = SignIns(store_engine, idle_s=600, lifetime_s=8 * 3600, now=clock)
    token = signins.create(ANN)

    def seen() -> dt.datetime:
        with store_engine.connect() as conn:
            seen: dt.datetime = conn.execute(select(CONSOLE_SESSIONS.c.seen)).scalar_one()
            return seen

    clock.passes(SEEN_EVERY_S - 1)
    assert signins.get(token) is not None
    assert seen() == START  # not written on every request
    clock.passes(1)
    assert signins.get(token) is not None
    assert seen() == START + dt.timedelta(seconds=SEEN_EVERY_S)
    clock.passes(599)
    assert signins.get(token) is not None  # still within the idle timeout of its last use
    clock.passes(600)
    assert signins.get(token) is None
    clock.passes(-600)
    assert signins.get(token) is not None  # the clock is all that decided it: nothing revoked


def test_a_short_idle_timeout_is_kept_to_a_quarter_of_it(store_engine: Engine) -> None:
    clock = Clock()
    signins = SignIns(store_engine, idle_s=60, lifetime_s=3600, now=clock)
    token = signins.create(ANN)
    for _ in range(10):  # used every 45 s: never idle for 60 s
        clock.passes(45)
        assert signins.get(token) is not None


def test_a_removed_local_account_is_signed_out(
    console: TestClient, store_engine: Engine, broker: KafkaCluster
) -> None:
    assert sign_in(console, "tom").status_code == 303
    cookie = console.cookies["sshtrail_session"]
    with another_console(store_engine, broker.bootstrap_servers) as same:
        same.cookies.set("sshtrail_session", cookie)
        assert same.get("/sessions", follow_redirects=False).status_code == 200
    settings = settings_for(url_of(store_engine), broker.bootstrap_servers)
    settings.auditors[:] = [entry for entry in settings.auditors if entry.name != "tom"]
    with TestClient(create_app(settings), base_url="http://127.0.0.1") as without_tom:
        without_tom.cookies.set("sshtrail_session", cookie)
        assert without_tom.get("/sessions", follow_redirects=False).status_code == 303


@pytest.mark.parametrize(
    "cookie",
    [
        "",
        "x",
        # Well formed, never given out (fixed: pytest-xdist's workers must collect the
        # same parameters, so nothing random goes in a test's id).
        "q3Zr0M9xVbT1kL2sP8yW4nC6dF7gH5jE0aB3uI9oR1w",
        "Zx" * 32,
        "A" * 42 + "=",
        "' OR 1=1 --" + "A" * 32,
        "%00" * 20,
        "." * 43,
        "+/" * 21 + "A",
        "A" * 10_000,
    ],
)
def test_forged_and_garbage_cookies_sign_nobody_in(
    console: TestClient, store_engine: Engine, cookie: str
) -> None:
    assert sign_in(console, "ann").status_code == 303
    console.cookies.clear()
    console.cookies.set("sshtrail_session", cookie)
    answer = console.get("/sessions", follow_redirects=False)
    assert answer.status_code == 303
    assert answer.headers["location"].startswith("/login")
    # the stored hash as a cookie is no key either
    with store_engine.connect() as conn:
        digest = conn.execute(select(CONSOLE_SESSIONS.c.token_hash)).scalar_one()
    console.cookies.set("sshtrail_session", base64.urlsafe_b64encode(digest).decode().rstrip("="))
    assert console.get("/sessions", follow_redirects=False).status_code == 303


def run_cli(capsys: pytest.CaptureFixture[str], config: Path, *argv: str) -> tuple[int, str, str]:
    try:
        status = main(["--config", str(config), *argv])
    except SystemExit as exc:
        status = int(exc.code or 0)
    out, err = capsys.readouterr()
    return status, out, err


@pytest.fixture
def config(store_engine: Engine, tmp_path: Path, broker: KafkaCluster) -> Path:
    path = tmp_path / "sshtrail.toml"
    path.write_text(
        f'state_dir = "{STATE_DIR}"\n[database]\nurl = "{url_of(store_engine)}"\n'
        f'[kafka]\nbootstrap_servers = "{broker.bootstrap_servers}"\n'
    )
    return path


def test_web_revoke_signs_out_at_the_next_request_and_is_in_the_access_log(
    console: TestClient,
    store_engine: Engine,
    config: Path,
    capsys: pytest.CaptureFixture[str],
    broker: KafkaCluster,
) -> None:
    assert sign_in(console, "ann").status_code == 303
    with another_console(store_engine, broker.bootstrap_servers) as tom:
        assert sign_in(tom, "tom").status_code == 303
        status, out, _ = run_cli(capsys, config, "web", "sessions", "--json")
        assert status == 0
        listed = {entry["auditor"]: entry for entry in json.loads(out)}
        assert set(listed) == {"ann", "tom"}
        assert listed["ann"]["state"] == "active"
        assert listed["ann"]["via"] == "password"
        status, out, _ = run_cli(capsys, config, "web", "sessions")
        assert status == 0
        assert listed["tom"]["id"][:12] in out
        assert "LAST SEEN" in out

        status, out, _ = run_cli(
            capsys,
            config,
            "web",
            "revoke",
            listed["tom"]["id"][:8],
            "--reason",
            "left",
            "--as",
            "root",
        )
        assert status == 0, out
        assert f"revoked sign-in {listed['tom']['id'][:12]} of tom" in out
        assert tom.get("/sessions", follow_redirects=False).status_code == 303
        assert console.get("/sessions", follow_redirects=False).status_code == 200

        status, _, err = run_cli(capsys, config, "web", "revoke", "--user", "tom", "--reason", "x")
        assert status == 1
        assert "no sign-in in use" in err
        status, out, _ = run_cli(
            capsys, config, "web", "revoke", "--user", "ann", "--reason", "audit"
        )
        assert status == 0
        assert console.get("/sessions", follow_redirects=False).status_code == 303

    status, out, _ = run_cli(capsys, config, "web", "sessions", "--all", "--json")
    states = {entry["auditor"]: (entry["state"], entry["reason"]) for entry in json.loads(out)}
    assert states == {"tom": ("revoked", "left"), "ann": ("revoked", "audit")}
    status, out, err = run_cli(capsys, config, "web", "sessions")
    assert status == 0
    assert "nobody is signed in" in err
    with store_engine.connect() as conn:
        revoked = conn.execute(
            select(ACCESS_LOG.c.auditor, ACCESS_LOG.c.detail).where(ACCESS_LOG.c.action == "revoke")
        ).all()
    assert [(who, detail.split(": ")[-1]) for who, detail in revoked] == [
        ("root", "left"),
        (revoked[1][0], "audit"),
    ]
    assert "of tom" in revoked[0][1]


@pytest.mark.parametrize(
    ("argv", "status", "said"),
    [
        (["web", "revoke", "--reason", "x"], 2, "ID or --user"),
        (["web", "revoke", "abcd", "--user", "tom", "--reason", "x"], 2, "ID or --user"),
        (["web", "revoke", "abcd"], 2, "--reason"),
        (["web", "revoke", "abcd", "--reason", " "], 2, "reason of 1 to 500"),
        (["web", "revoke", "xyz'--", "--reason", "x"], 2, "4 to 32 hex digits"),
        (["web", "revoke", "--user", "a b", "--reason", "x"], 2, "auditor's name"),
        (["web", "revoke", "--user", "x" * 129, "--reason", "x"], 2, "auditor's name"),
        (["web", "revoke", "abcd", "--reason", "x" * 501], 2, "reason of 1 to 500"),
        (["web", "revoke", "abcd", "--reason", "x"], 1, "no sign-in in use"),
    ],
)
def test_web_revoke_refuses_bad_input(
    store_engine: Engine,
    config: Path,
    capsys: pytest.CaptureFixture[str],
    *,
    argv: list[str],
    status: int,
    said: str,
) -> None:
    signins = SignIns(store_engine, idle_s=600, lifetime_s=3600)
    token = signins.create(ANN)
    answered, _, err = run_cli(capsys, config, *argv)
    assert (answered, said in err) == (status, True), err
    assert signins.get(token) is not None


def test_an_ambiguous_prefix_revokes_nothing(
    store_engine: Engine, config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    signins = SignIns(store_engine, idle_s=600, lifetime_s=3600)
    tokens = [signins.create(ANN) for _ in range(2)]
    with store_engine.begin() as conn:  # two ids that share a prefix, as ids may
        ids = list(conn.execute(select(CONSOLE_SESSIONS.c.id)).scalars())
        for n, session_id in enumerate(ids):
            conn.execute(
                CONSOLE_SESSIONS.update()
                .where(CONSOLE_SESSIONS.c.id == session_id)
                .values(id="beef" + f"{n}" * 28)
            )
    status, _, err = run_cli(capsys, config, "web", "revoke", "beef", "--reason", "x")
    assert status == 3
    assert "names 2 sign-ins" in err
    assert all(signins.get(token) is not None for token in tokens)
    status, out, _ = run_cli(capsys, config, "web", "revoke", "beef1", "--reason", "x")
    assert status == 0
    assert "revoked sign-in beef11111111 of ann" in out
    assert [signins.get(token) is not None for token in tokens].count(True) == 1
