"""Gateway → Kafka → index, with a person's shell session typed through real OpenSSH."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pexpect
import pytest
from sqlalchemy import Engine, select

from sshtrail import search
from sshtrail.db import make_engine
from sshtrail.events import Input
from sshtrail.search import Query
from sshtrail.states import Kind
from tests.support.consumers import start_member, wait_for, write_config
from tests.support.gateway import GatewayProcess, published

pytestmark = pytest.mark.e2e

SECRET = "s3cr3t-Tr41l"


def type_a_session(gateway: GatewayProcess) -> None:
    """Typing as a person does: a typo fixed with backspace, history, a password."""
    child = pexpect.spawn(
        *_argv(gateway.ssh("alice:t1", tty=True)),
        timeout=30,
        dimensions=(24, 80),
        env={**os.environ, "TERM": "xterm"},
    )
    try:
        child.sendline("PS1='READ''Y> '")  # the echoed command does not match the prompt
        child.expect("READY> ")
        child.sendline("echo hello")
        child.expect("\rhello")
        child.expect("READY> ")
        child.send("ehco")  # a typo ...
        child.expect("ehco")
        child.send("\x7f\x7f\x7f")  # ... rubbed out
        child.send("cho fixed\r")
        child.expect("\rfixed")
        child.expect("READY> ")
        child.send("\x1b[A")  # history: brings back "echo fixed"
        child.expect("echo fixed")
        child.send("\x1b[A")  # and before it "echo hello" (readline redraws "hello" only)
        child.expect("\x08hello")
        child.send(" again\r")
        child.expect("\rhello again")
        child.expect("READY> ")
        child.sendline("read -s -p 'Password: ' pw; echo; echo got ${#pw} characters")
        child.expect("Password: ")
        child.sendline(SECRET)
        child.expect(f"got {len(SECRET)} characters")
        child.expect("READY> ")
        child.sendline("ls /etc")
        child.expect("passwd")
        child.expect("READY> ")
        child.sendline("exit")
        child.expect(pexpect.EOF)
    finally:
        child.close()


def _argv(argv: list[str]) -> tuple[str, list[str]]:
    return argv[0], argv[1:]


def test_commands_as_run_are_found_once_and_the_password_never(
    gateway: GatewayProcess, database_url: str, tmp_path: Path
) -> None:
    type_a_session(gateway)
    config = write_config(
        tmp_path / "index.toml", gateway.servers, gateway.topic, "sqlite:///unused.db", database_url
    )
    member = start_member(config, "index")
    engine = make_engine(database_url)
    try:
        wait_for(lambda: _ended(engine), what="the session to be indexed to its end")
    finally:
        status, _, err = member.stop(signal.SIGTERM)
    assert status == 0, err
    [(session_id, entries)] = published(gateway.servers, gateway.topic).items()
    events = [event for _, _, chunk in entries for event in chunk.events]
    enters = {e.t for e in events if isinstance(e, Input) and (b"\r" in e.data or b"\n" in e.data)}
    with engine.connect() as conn:
        commands = search.search(conn, Query("e", kind="command", limit=1000))
        commands += search.search(conn, Query("ls /etc", kind="command"))

        def found(text: str, kind: Kind | None = None) -> list[search.Hit]:
            return search.search(conn, Query(text, kind=kind))

        assert [h.text for h in found("echo hello")] == ["echo hello", "echo hello again"]
        assert [h.text for h in found("echo fixed")] == ["echo fixed"]
        assert [h.text for h in found("ls /etc")] == ["ls /etc"]
        assert found("ehco") == []  # the typo was never run
        assert found(SECRET) == []
        assert found(SECRET[:6]) == []
        assert [h.text for h in found("hello again", "output")] == ["hello again"]
        assert found("passwd", "output")
        assert next(h.text for h in found("ALICE", "meta")).startswith("operator alice target t1")
    for hit in found_all(engine):
        assert str(hit.session_id) == session_id
    by_text = {hit.text: hit for hit in commands}
    for text in ("echo hello", "echo fixed", "echo hello again", "ls /etc"):
        assert by_text[text].t in enters, f"{text!r} is not at the time its Enter was typed"
    engine.dispose()


def found_all(engine: Engine) -> list[search.Hit]:
    with engine.connect() as conn:
        return search.search(conn, Query("e", limit=10_000))


def _ended(engine: Engine) -> bool:
    try:
        with engine.connect() as conn:
            return conn.execute(select(search.SESSIONS.c.ended)).scalars().all() == [True]
    except Exception:
        return False
