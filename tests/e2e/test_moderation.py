"""Moderated sessions: a target reached only while a second person watches.

The real OpenSSH client through the second of two real gateways to a real sshd; the
policy file's ``[[moderation]]`` table covers target ``t1``. Moderators are present with
``sshtrail watch --moderate`` (a real CLI process: join, a heartbeat every second, leave,
signed with the control key, on the shared control topic); the gateway that holds the
session -- not the other one -- counts them. Checked on the operator's terminal, on the
target (what a held command does, and how many times), in ``sshtrail moderate`` and in
the stored recording (``show``). Forged and replayed presence is refused and logged.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncssh
import pexpect
import pytest
from confluent_kafka import Producer
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from sshtrail import control
from sshtrail.keyfiles import load_ed25519_private
from tests.e2e.test_reviews import _raw
from tests.support.cli import Running
from tests.support.controlstack import Stack
from tests.support.gateway import toml_value
from tests.support.kafka import Broker
from tests.support.sshd import SshdTarget
from tests.support.waiting import wait_for

pytestmark = pytest.mark.e2e

TABLE = """
[[moderation]]
name = "pay"
targets = ["t1", "fwd"]
moderators = ["mia", "group:dba"]
count = 1
on_leave = "{on_leave}"
wait_s = {wait_s}
message = "payments need a second person"
"""


@pytest.fixture(scope="module")
def stack(
    tmp_path_factory: pytest.TempPathFactory, broker: Broker, sshd: SshdTarget
) -> Iterator[Stack]:
    """One stack for the module; each test writes the policy it needs (the gateways read
    the file again when it changes)."""
    root = tmp_path_factory.mktemp("moderation")
    rules = root / "policy.toml"
    rules.write_text(TABLE.format(on_leave="pause", wait_s=60))
    made = Stack(root, broker, sshd, gateway_tail=f"[policy]\nfile = {toml_value(str(rules))}\n")
    # dan moderates by his console group; carol is an auditor, but no moderator.
    made.config.write_text(
        made.config.read_text()
        + '[[auditors]]\nname = "dan"\ngroups = ["dba"]\n'
        + '[[auditors]]\nname = "carol"\ngroups = ["auditors"]\n'
    )
    made.start()
    assert made.store is not None
    made.store.keep()  # the module's: not killed when the first test ends
    yield made
    made.stop()


def policy(stack: Stack, on_leave: str = "pause", wait_s: float = 60) -> None:
    path = stack.config.parent / "policy.toml"
    text = TABLE.format(on_leave=on_leave, wait_s=wait_s)
    if path.read_text() != text:
        path.write_text(text)
        time.sleep(1.5)  # the gateways look at the file at most once a second


def operator(stack: Stack, *remote: str) -> pexpect.spawn:
    argv = stack.two.ssh("alice:t1", *remote, tty=not remote)
    return pexpect.spawn(argv[0], argv[1:], timeout=30, env={**os.environ, "TERM": "xterm"})


def waiting_session(stack: Stack) -> str:
    """The id of the moderated session waiting for a moderator (``sshtrail moderate``)."""
    found: list[dict[str, Any]] = []

    def listed() -> bool:
        found[:] = moderated(stack)
        return bool(found)

    wait_for(listed, what="the session listed by sshtrail moderate", timeout=30)
    [item] = found
    assert item["status"] == "waiting"
    return str(item["session"])


def moderated(stack: Stack, *argv: str) -> list[dict[str, Any]]:
    done = stack.run("moderate", "--json", *argv)
    assert done.returncode in (0, 1), done.stderr
    assert done.stdout.strip(), (done.returncode, done.stderr)
    found: list[dict[str, Any]] = json.loads(done.stdout)
    return [item for item in found if item["session"] and _since_start(stack, item)]


def _since_start(stack: Stack, item: dict[str, Any]) -> bool:
    return int(item["since_ns"]) >= stack.ready_ns


def status_of(stack: Stack, session: str) -> dict[str, Any]:
    [item] = [i for i in moderated(stack, "--all") if i["session"] == session]
    return item


def moderator(stack: Stack, session: str, name: str) -> Running:
    """``sshtrail watch --moderate SESSION --as NAME``, joined."""
    watcher = Running(
        "--config",
        str(stack.config),
        "watch",
        "--moderate",
        session,
        "--as",
        name,
        cwd=stack.config.parent,
    )
    wait_for(
        lambda: "moderating" in watcher.stderr,
        what=f"{name}'s join to be sent",
        timeout=30,
    )
    return watcher


def stored(stack: Stack, session: str) -> object:
    """The session's status in the store, None before the store has it."""
    row = stack.row(session)
    return None if row is None else row["status"]


def shown(stack: Stack, session: str) -> dict[str, Any]:
    done = stack.run("show", session, "--json")
    assert done.returncode == 0, done.stderr
    document: dict[str, Any] = json.loads(done.stdout)
    return document


def test_a_moderated_session_runs_only_while_a_moderator_watches(stack: Stack) -> None:
    policy(stack)
    marker = Path("/tmp") / f"moderated-{uuid.uuid4().hex[:8]}"
    child = operator(stack)
    child.expect("payments need a second person")
    child.expect(r"waiting for a moderator \(1 needed, rule pay")
    session = waiting_session(stack)
    child.sendline("echo early-$((40+2))")  # typed while waiting: held, runs once started

    carol = moderator(stack, session, "carol")  # an auditor, not a moderator of rule pay
    wait_for(
        lambda: any("carol watching, not counted" in line for line in stack.two.output),
        what="the gateway to see carol, and not count her",
        timeout=15,
    )
    time.sleep(1.5)
    assert status_of(stack, session)["status"] == "waiting"
    with pytest.raises(pexpect.TIMEOUT):
        child.expect("early-42", timeout=0.5)

    dan = moderator(stack, session, "dan")  # a moderator by his console group
    child.expect("moderator dan joined; the session starts")
    child.expect("early-42")
    child.sendline("PS1='READY> '")
    child.expect("READY> ")
    listed = status_of(stack, session)
    assert (listed["status"], listed["present"]) == ("running", ["dan"])

    dan.process.kill()  # a moderator whose terminal is gone: no leave, the heartbeats stop
    gone = time.monotonic()
    child.expect("What you type is held, not sent, until a moderator is back", timeout=15)
    paused_after = time.monotonic() - gone
    child.sendline(f"echo ran >> {marker}")
    time.sleep(2.0)
    assert not marker.exists()  # held at the gateway: not run

    replayed = _presence_on_topic(stack, session, "dan", "join")
    mark = len(stack.two.output)
    _send_raw(stack, control.key_of(replayed[0]), replayed[1])
    wait_for(
        lambda: any("refused a presence" in line for line in stack.two.output[mark:]),
        what="the gateway refusing dan's join, re-sent",
        timeout=15,
    )
    assert not marker.exists()

    mia = moderator(stack, session, "mia")
    child.expect("moderator mia joined; input flows again")
    wait_for(marker.exists, what="the held command to run", timeout=15)
    child.sendline("exit")
    child.expect(pexpect.EOF)
    mia.stop()
    carol.stop()
    assert marker.read_text() == "ran\n"  # exactly once

    assert not any("moderator dan joined" in line for line in stack.one.output)
    wait_for(lambda: stored(stack, session) == "closed", what="the end stored")
    notes = [entry["text"] for entry in shown(stack, session)["moderation"]]
    expected = [
        "waiting for 1 moderator(s) of rule pay",
        "carol watching (via terminal); does not count: not a moderator of rule pay",
        "moderator dan joined (via terminal)",
        "started: 1 of 1 moderators present (dan)",
        f"moderator dan left (no word from them for {control.PRESENCE_TTL_S:g} s)",
        "paused: 0 of 1 moderators present (none); input held",
        "moderator mia joined (via terminal)",
        "resumed: 1 of 1 moderators present (mia)",
    ]
    for text in expected:
        assert any(note.startswith(text) for note in notes), (text, notes)
    print(f"input held {paused_after:.1f} s after the moderator's terminal was killed")
    log = stack.run("access-log", "--json")
    assert log.returncode == 0, log.stderr
    moderation_lines = [
        e for e in json.loads(log.stdout) if e["action"] in ("moderate", "moderate-end")
    ]
    assert {(e["auditor"], e["action"], e["detail"]) for e in moderation_lines} >= {
        ("dan", "moderate", "joined"),
        ("mia", "moderate", "joined"),
        ("mia", "moderate-end", "left"),
    }


def test_a_session_nobody_moderates_is_refused_and_forged_presence_does_not_help(
    stack: Stack,
) -> None:
    policy(stack, wait_s=6)
    child = operator(stack, "echo", "never-here")
    child.expect(r"waiting for a moderator \(1 needed")
    session = waiting_session(stack)
    stranger = Ed25519PrivateKey.generate()
    forged = control.Presence(
        request_id=control.new_id(),
        at=control.now_ns(),
        session=session,
        moderator="mia",
        groups=(),
        state="join",
        via="console",
    )
    mark = len(stack.two.output)
    _send_raw(stack, control.key_of(forged), control.encode(forged, stranger))
    wait_for(
        lambda: any("not trusted" in line for line in stack.two.output[mark:]),
        what="the gateway refusing the forged presence",
        timeout=15,
    )
    child.expect("no moderator joined within 6 s \\(rule pay\\)")
    child.expect(pexpect.EOF)
    assert b"never-here" not in child.before  # the command never ran
    child.close()
    assert child.exitstatus == 1
    assert status_of(stack, session)["status"] == "refused"
    wait_for(lambda: stored(stack, session) not in (None, "active"), what="the end stored")
    document = shown(stack, session)
    assert "no moderator joined within 6 s" in (document["end_reason"] or "")


def test_on_leave_terminate_ends_the_session_with_the_reason(stack: Stack) -> None:
    policy(stack, on_leave="terminate")
    child = operator(stack)
    child.expect(r"waiting for a moderator \(1 needed")
    session = waiting_session(stack)
    mia = moderator(stack, session, "mia")
    child.expect("the session starts")
    child.sendline("echo on-$((1+1))")
    child.expect("on-2")
    mia.stop(signal.SIGINT)  # ends her moderation: a leave
    child.expect("moderator mia left: 0 of 1 moderators present")
    child.expect(pexpect.EOF)
    wait_for(lambda: stored(stack, session) == "closed", what="the end stored")
    assert "on_leave = terminate" in (shown(stack, session)["end_reason"] or "")


def test_forwarding_to_a_moderated_target_is_refused(stack: Stack) -> None:
    """``ssh -L`` would reach the target with nothing to watch: refused, recorded."""
    policy(stack)

    async def forward() -> str:
        async with stack.two.connect("alice:fwd") as conn:
            with pytest.raises(asyncssh.ChannelOpenError) as refused:
                await conn.open_connection("127.0.0.1", 22)
            return str(refused.value.reason)

    reason = asyncio.run(forward())
    assert "target 'fwd': its sessions are moderated" in reason
    assert "a forwarded connection cannot be watched" in reason


def _presence_on_topic(
    stack: Stack, session: str, name: str, state: str
) -> tuple[control.Presence, bytes]:
    """A presence as it is on the topic (the signed bytes), to re-send."""
    trusted = {load_ed25519_private(stack.one.control_key, "key").public_key().public_bytes_raw()}
    for key, value in _raw(stack.servers, stack.one.control_topic):
        if key == control.PRESENCE_PREFIX + f"{session}/{name}".encode():
            message = control.decode(value, trusted, key)
            if isinstance(message, control.Presence) and message.state == state:
                return message, value
    raise AssertionError(f"no {state} of {name} in session {session} on the topic")


def _send_raw(stack: Stack, key: bytes, value: bytes) -> None:
    producer = Producer({"bootstrap.servers": stack.servers})
    producer.produce(stack.one.control_topic, value, key)
    assert producer.flush(15) == 0
