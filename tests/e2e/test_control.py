"""Terminate and lock through the control topic: the real OpenSSH client through real
gateways to a real sshd, requests from ``sshtrail terminate`` / ``lock`` / ``unlock``,
the end recorded by a real store member."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pexpect
import pytest
from confluent_kafka import Producer
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import select

from sshtrail import control, migrate
from sshtrail.db import make_engine
from sshtrail.keyfiles import public_line
from sshtrail.passwords import hash_password
from sshtrail.tables import SESSIONS
from tests.support.browser import (
    needs_chromium,
    problems_in_console,
    screen,
    sign_in,
    start_console,
)
from tests.support.cli import Running, sshtrail
from tests.support.consumers import start_member, write_config
from tests.support.gateway import GatewayProcess
from tests.support.kafka import Broker
from tests.support.sshd import SshdTarget
from tests.support.waiting import wait_for

pytestmark = pytest.mark.e2e


class Stack:
    """Two gateways sharing the sessions and control topics, a store member, and the
    settings an auditor's commands use."""

    def __init__(self, root: Path, broker: Broker, sshd: SshdTarget) -> None:
        self.one = GatewayProcess(
            root / "gw1", broker.bootstrap_servers, sshd, dead_letters=True, instance="gw-one"
        )
        self.two = GatewayProcess(
            root / "gw2",
            broker.bootstrap_servers,
            sshd,
            topic=self.one.topic,
            control_topic=self.one.control_topic,
            instance="gw-two",
        )
        self.servers = broker.bootstrap_servers
        self.store_url = f"sqlite:///{root / 'store.db'}"
        migrate.upgrade(self.store_url)
        self.config = write_config(
            root / "sshtrail.toml", broker.bootstrap_servers, self.one.topic, self.store_url
        )
        signer = self.one.workdir / "state" / "gateway" / "recording_ed25519_key"
        signer2 = self.two.workdir / "state" / "gateway" / "recording_ed25519_key"
        self.config.write_text(
            self.config.read_text()
            + f'[control]\ntopic = "{self.one.control_topic}"\n'
            + f'signing_key = "{self.one.control_key}"\n'
            + 'gateway_keys = ["{second}"]\n'
            + f'[gateway]\nsigning_key = "{signer}"\n'
        )
        self.other_signer = signer2
        self.store: Running | None = None

    def start(self) -> None:
        self.one.start()
        self.two.start()
        second = public_line(self.other_signer)  # made by the second gateway's start
        self.config.write_text(self.config.read_text().replace("{second}", second))
        self.store = start_member(self.config, "store")

    def stop(self) -> None:
        if self.store is not None:
            self.store.stop(signal.SIGTERM)
        for gateway in (self.one, self.two):
            if gateway.process is not None and gateway.process.poll() is None:
                gateway.stop()

    def run(self, *argv: str, check: bool = False) -> subprocess.CompletedProcess[bytes]:
        return sshtrail(self.config, *argv, check=check)

    def row(self, session_id: str) -> dict[str, object] | None:
        engine = make_engine(self.store_url)
        try:
            with engine.connect() as conn:
                found = (
                    conn.execute(select(SESSIONS).where(SESSIONS.c.id == uuid.UUID(session_id)))
                    .mappings()
                    .first()
                )
                return dict(found) if found is not None else None
        finally:
            engine.dispose()

    def active_session(
        self, gateway: GatewayProcess, operator: str = "alice"
    ) -> tuple[pexpect.spawn, str]:
        """A shell session through ``gateway``, stored as active; the child and its id."""
        argv = gateway.ssh(f"{operator}:t1", tty=True)
        child = pexpect.spawn(argv[0], argv[1:], timeout=30, env={**os.environ, "TERM": "xterm"})
        child.expect("recorded and may be watched")  # the banner, before anything else
        child.sendline("echo ready-$((40+2))")
        child.expect("ready-42")
        session_id = self._newest_active()
        return child, session_id

    def _newest_active(self) -> str:
        found: list[str] = []

        def stored() -> bool:
            engine = make_engine(self.store_url)
            try:
                with engine.connect() as conn:
                    ids = (
                        conn.execute(
                            select(SESSIONS.c.id)
                            .where(SESSIONS.c.status == "active")
                            .order_by(SESSIONS.c.started_at.desc())
                        )
                        .scalars()
                        .all()
                    )
            finally:
                engine.dispose()
            found[:] = [i.hex for i in ids]
            return bool(found)

        wait_for(stored, what="the session stored as active", timeout=30)
        return found[0]


@pytest.fixture
def stack(tmp_path: Path, broker: Broker, sshd: SshdTarget) -> Iterator[Stack]:
    made = Stack(tmp_path, broker, sshd)
    made.start()
    yield made
    made.stop()


def test_terminate_tells_the_operator_ends_the_session_and_only_its_gateway_acts(
    stack: Stack,
) -> None:
    child, session_id = stack.active_session(stack.two)
    done = stack.run("terminate", session_id[:12], "--reason", "policy check", "--as", "ann")
    assert done.returncode == 0, done.stderr
    assert b"terminated by ann: policy check" in done.stdout
    assert b"gateway gw-two" in done.stdout
    child.expect("terminated by ann: policy check")
    child.expect(pexpect.EOF)
    wait_for(
        lambda: (
            (stack.row(session_id) or {}).get("end_reason") == "terminated by ann: policy check"
        ),
        what="the end recorded with the auditor's name",
        timeout=30,
    )
    shown = stack.run("show", session_id, check=True).stdout.decode()
    assert "terminated by ann: policy check" in shown
    # The other gateway saw the request and did nothing with it.
    assert not any("terminated by" in line for line in stack.one.output)
    logged = json.loads(stack.run("access-log", "--json", "--auditor", "ann", check=True).stdout)
    assert [(e["action"], e["session"], e["detail"]) for e in logged] == [
        ("terminate", str(uuid.UUID(session_id)), "policy check")
    ]
    assert logged[0]["address"].startswith("cli:")
    again = stack.run("terminate", session_id, "--reason", "twice")
    assert again.returncode == 1
    assert b"already ended" in again.stderr


def test_terminate_of_an_unknown_session_says_so(stack: Stack) -> None:
    unknown = stack.run("terminate", "0123456789ab", "--reason", "x")
    assert unknown.returncode == 3
    assert b"no session id starts with 0123456789ab" in unknown.stderr


def test_forged_requests_are_refused_and_logged(stack: Stack) -> None:
    child, session_id = stack.active_session(stack.one)
    forged = control.Terminate(
        request_id=control.new_id(),
        at=control.now_ns(),
        session=session_id,
        auditor="mallory",
        reason="forged",
    )
    intruder = Ed25519PrivateKey.generate()
    producer = Producer({"bootstrap.servers": stack.servers})
    key = session_id.encode()
    for value in (
        control.encode(forged, intruder),  # signed, by a key nobody trusts
        b'{"kind": "terminate", "request_id": "x", "at": 1, "session": "' + key + b'"}',
        b"\x00garbage\xff" * 100,
    ):
        producer.produce(stack.one.control_topic, value, key)
    assert producer.flush(15) == 0
    wait_for(
        lambda: sum("refused a control message" in line for line in stack.one.output) >= 3,
        what="the gateway logging three refusals",
        timeout=30,
    )
    child.sendline("echo still-here-$((1+1))")
    child.expect("still-here-2")  # the session goes on
    child.sendline("exit")
    child.expect(pexpect.EOF)


def test_a_locked_operator_is_refused_until_unlocked(stack: Stack) -> None:
    child, _ = stack.active_session(stack.one)
    locked = stack.run("lock", "alice", "--reason", "incident 7", "--end-sessions", "--as", "ann")
    assert locked.returncode == 0, locked.stderr
    assert b"locked on gateway gw-one" in locked.stdout
    assert b"locked on gateway gw-two" in locked.stdout
    child.expect("operator locked by ann: incident 7")
    child.expect(pexpect.EOF)
    for gateway in (stack.one, stack.two):
        refused = subprocess.run(
            gateway.ssh("alice:t1", "echo hi"), capture_output=True, timeout=30, check=False
        )
        assert refused.returncode != 0
        assert b"locked by ann: incident 7" in refused.stderr, "".join(gateway.output[-15:])
    # A gateway started after the lock knows it from the topic.
    stack.two.stop()
    stack.two.start()
    late = subprocess.run(
        stack.two.ssh("alice:t1", "echo hi"), capture_output=True, timeout=30, check=False
    )
    assert b"locked by ann" in late.stderr
    unlocked = stack.run("unlock", "alice", "--reason", "cleared", "--as", "ann")
    assert unlocked.returncode == 0, unlocked.stderr
    deadline = time.monotonic() + 15
    while True:
        again = subprocess.run(
            stack.one.ssh("alice:t1", "echo hi-$((1+1))"),
            capture_output=True,
            timeout=30,
            check=False,
        )
        if b"hi-2" in again.stdout or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert b"hi-2" in again.stdout


@needs_chromium
def test_an_auditor_watches_live_in_the_browser_and_terminates(
    stack: Stack, browser: object, tmp_path: Path
) -> None:
    from selenium.webdriver.common.by import By

    stack.config.write_text(
        stack.config.read_text()
        + '[[auditors]]\nname = "ann"\nterminate = true\n'
        + f'password_hash = "{hash_password("ann-password-1")}"\n'
    )
    process, url = start_console(stack.config, tmp_path)
    try:
        child, session_id = stack.active_session(stack.one)
        d: Any = browser
        sign_in(d, url, "ann", "ann-password-1")
        d.get(f"{url}/sessions/{session_id}")
        assert d.find_element(By.ID, "live-note")
        wait_for(lambda: "ready-42" in screen(d), what="the screen so far", timeout=20)
        child.sendline("echo typed-while-watched-$((6*7))")
        wait_for(
            lambda: "typed-while-watched-42" in screen(d), what="typing shown live", timeout=10
        )
        d.save_screenshot(str(tmp_path / "live.png"))
        d.find_element(By.ID, "terminate-reason").send_keys("watched enough")
        d.find_element(By.ID, "terminate").click()
        assert "terminated by ann: watched enough" in d.find_element(By.ID, "outcome").text
        child.expect("terminated by ann: watched enough")
        child.expect(pexpect.EOF)
        reason = "terminated by ann: watched enough"
        wait_for(
            lambda: (stack.row(session_id) or {}).get("end_reason") == reason,
            what="the end stored",
            timeout=30,
        )
        assert reason in stack.run("show", session_id, check=True).stdout.decode()
        d.get(f"{url}/sessions/{session_id}")
        assert reason in d.find_element(By.ID, "fields").text
        assert d.find_elements(By.ID, "terminate") == []  # ended: nothing to terminate
        assert problems_in_console(d) == []
        entries = stack.run("access-log", "--json", "--auditor", "ann", check=True).stdout
        actions = [(e["action"], e["session"], e["detail"]) for e in json.loads(entries)]
        assert ("watch", str(uuid.UUID(session_id)), "") in actions
        assert ("terminate", str(uuid.UUID(session_id)), "watched enough") in actions
        assert ("view", str(uuid.UUID(session_id)), "") in actions
    finally:
        process.terminate()
        process.wait(timeout=30)
