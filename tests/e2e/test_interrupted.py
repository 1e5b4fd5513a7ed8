"""Sessions whose gateway dies under them (issue 32, finding 9): ended, never left ``active``.

The real OpenSSH client in a terminal through real gateways (kill -9'd) to a
real sshd, Apache Kafka, and a store member; the auditor's commands read what
the store made of it:

* the gateway comes back: it ends the session itself, signed, ``interrupted``,
  with the last seq, and ``verify`` says ok;
* the gateway never comes back: the store marks the session interrupted after
  ``consumer.interrupted_after_s`` without a chunk, unsigned and said to be the
  store's -- while a session that is only idle for longer than that, its
  gateway alive, is not (the gateway's keep-alives);
* the gateway comes back after the store gave up: its signed end stands, and
  the record says the store had marked it.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pexpect
import pytest
from sqlalchemy import select

from sshtrail.db import make_engine
from sshtrail.events import End, Notice, Output
from sshtrail.interrupted import KEEPALIVE
from sshtrail.tables import CHUNKS, SESSIONS
from sshtrail.wire import Chunk, decode_chunk
from tests.support import controlstack
from tests.support.cli import Running
from tests.support.gateway import GatewayProcess
from tests.support.kafka import Broker
from tests.support.sshd import SshdTarget
from tests.support.waiting import wait_for

pytestmark = pytest.mark.e2e

#: The gateways' keep-alive period and the store's patience, shortened for the test.
KEEPALIVE_S = 1
INTERRUPTED_AFTER_S = 6


class Stack(controlstack.Stack):
    """Two gateways on one sessions topic, a store member, an auditor's settings; the
    gateways' keep-alives and the store's patience shortened."""

    def __init__(
        self, root: Path, broker: Broker, sshd: SshdTarget, interrupted_after_s: int
    ) -> None:
        super().__init__(
            root,
            broker,
            sshd,
            gateway_extra=f"keepalive_s = {KEEPALIVE_S}",
            interrupted_after_s=interrupted_after_s,
        )

    def listed(self, status: str) -> set[str]:
        """The sessions ``sshtrail sessions --status STATUS`` lists (full ids, hex)."""
        found = json.loads(self.run("sessions", "--status", status, "--json", check=True).stdout)
        return {uuid.UUID(s["session"]).hex for s in found}

    def row(self, session_id: str) -> dict[str, Any]:
        engine = make_engine(self.store_url)
        try:
            with engine.connect() as conn:
                query = select(SESSIONS).where(SESSIONS.c.id == uuid.UUID(session_id))
                return dict(conn.execute(query).mappings().one())
        finally:
            engine.dispose()

    def chunks(self, session_id: str) -> list[Chunk]:
        engine = make_engine(self.store_url)
        try:
            with engine.connect() as conn:
                query = select(CHUNKS.c.data).where(CHUNKS.c.session_id == uuid.UUID(session_id))
                found = conn.execute(query.order_by(CHUNKS.c.seq)).scalars()
                return [decode_chunk(data) for data in found]
        finally:
            engine.dispose()

    def output(self, session_id: str) -> bytes:
        return b"".join(
            e.data for c in self.chunks(session_id) for e in c.events if isinstance(e, Output)
        )

    def shell(self, gateway: GatewayProcess) -> tuple[pexpect.spawn, str]:
        """A shell in a terminal through ``gateway``, stored as active; the child, its id."""
        before = self.listed("active")
        argv = gateway.ssh("alice:t1", tty=True)
        child = pexpect.spawn(argv[0], argv[1:], timeout=30, env={**os.environ, "TERM": "xterm"})
        child.expect("recorded and may be watched")
        child.sendline("echo ready-$((40+2))")
        child.expect("ready-42")
        found: list[str] = []

        def stored() -> bool:
            found[:] = sorted(self.listed("active") - before)
            return len(found) == 1

        wait_for(stored, what="the session stored as active", timeout=30)
        return child, found[0]


@pytest.fixture
def stack(
    request: pytest.FixtureRequest, tmp_path: Path, broker: Broker, sshd: SshdTarget
) -> Iterator[Stack]:
    made = Stack(tmp_path, broker, sshd, getattr(request, "param", INTERRUPTED_AFTER_S))
    made.start()
    yield made
    made.stop()


#: The store waits long enough here that only the restarted gateway can end the session.
@pytest.mark.parametrize("stack", [600], indirect=True)
def test_a_gateway_killed_mid_session_ends_it_signed_when_it_comes_back(stack: Stack) -> None:
    child, sid = stack.shell(stack.one)
    child.sendline("echo before-the-kill-$((6*7))")
    child.expect("before-the-kill-42")
    wait_for(
        lambda: b"before-the-kill-42" in stack.output(sid),
        what="the output stored before the kill",
        timeout=30,
    )
    watcher = Running("--config", str(stack.config), "watch", sid, cwd=stack.root)
    stack.one.kill()  # kill -9: no end chunk written
    child.expect(pexpect.EOF)
    stored = stack.chunks(sid)
    assert stack.row(sid)["status"] == "active"  # what the old code left for ever
    stack.one.start()

    wait_for(
        lambda: stack.row(sid)["status"] == "interrupted",
        what="the session ended by the restarted gateway",
        timeout=60,
    )
    row = stack.row(sid)
    chunks = stack.chunks(sid)
    end = chunks[-1].end
    assert isinstance(end, End)
    last_recorded = chunks[-2]
    assert [c.seq for c in chunks] == list(range(len(chunks)))
    assert [c.raw for c in chunks[: len(stored)]] == [c.raw for c in stored]
    assert (row["last_seq"], end.chunks) == (len(chunks) - 1, len(chunks))
    assert end.t == last_recorded.events[-1].t  # last heard from: its last event
    assert row["end_reason"] == end.reason
    assert end.reason.startswith("interrupted: the gateway stopped unexpectedly; last heard")
    assert f"(chunk {last_recorded.seq})" in end.reason
    assert (row["verified"], row["interrupted_at"]) == (True, None)
    assert row["bytes_in"] > 0
    assert row["bytes_out"] > len("before-the-kill-42")
    assert row["ended_at"] == row["started_at"] + dt.timedelta(microseconds=end.t // 1000)

    verified = stack.run("verify", sid)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    line = verified.stdout.decode()
    assert f"{uuid.UUID(sid)}  ok  " in line
    assert "signature valid; interrupted: the gateway stopped unexpectedly" in line
    assert "signed by SHA256:" in line
    [verdict] = json.loads(stack.run("verify", sid, "--json", check=True).stdout)
    assert (verdict["status"], verdict["interrupted"]) == ("ok", "gateway")
    shown = stack.run("show", sid, check=True).stdout.decode()
    assert _field(shown, "status") == "interrupted"
    assert _field(shown, "interrupted").startswith("by its gateway, which had stopped")
    assert _field(shown, "chunks") == f"{len(chunks)} stored, last seq {len(chunks) - 1}"
    assert sid in stack.listed("interrupted")
    assert sid not in stack.listed("active")
    status, _, said = watcher.wait(30)  # a watcher's live view ends with it
    assert status == 0
    assert "session ended: interrupted: the gateway stopped unexpectedly" in said


def test_a_session_whose_gateway_never_returns_is_marked_by_the_store_an_idle_one_is_not(
    stack: Stack,
) -> None:
    idle, idle_sid = stack.shell(stack.one)
    lost, lost_sid = stack.shell(stack.two)
    stack.two.kill()  # and never started again
    lost.expect(pexpect.EOF)
    quiet_since = time.monotonic()

    wait_for(  # a full run's load once took longer than 60 s
        lambda: stack.row(lost_sid)["status"] == "interrupted",
        what="the store to give the session up",
        timeout=120,
    )
    row = stack.row(lost_sid)
    assert (row["end_reason"], row["signature"]) == (None, None)
    assert row["interrupted_at"] is not None
    assert row["ended_at"] is not None  # when it was last heard from
    assert row["bytes_out"] > 0  # as recorded
    verified = stack.run("verify", lost_sid)
    assert verified.returncode == 1
    said = verified.stdout.decode()
    assert "  unsigned  no end chunk: marked interrupted by the store at " in said
    assert "the end is the store's, not signed by the gateway" in said
    [verdict] = json.loads(stack.run("verify", lost_sid, "--json").stdout)
    assert (verdict["status"], verdict["interrupted"]) == ("unsigned", "store")
    shown = stack.run("show", lost_sid, check=True).stdout.decode()
    assert _field(shown, "status") == "interrupted"
    assert _field(shown, "interrupted").startswith("by the store at ")
    assert "no signed end" in _field(shown, "interrupted")
    assert lost_sid in stack.listed("interrupted")
    assert lost_sid not in stack.listed("active")

    # The other session typed nothing all this while, longer than the store waits: its
    # gateway said it is alive, so it is still active, never marked.
    wait_for(
        lambda: time.monotonic() - quiet_since > 2 * INTERRUPTED_AFTER_S,
        what="twice the store's patience",
        timeout=60,
    )
    still = stack.row(idle_sid)
    assert (still["status"], still["interrupted_at"]) == ("active", None)
    alive = [e for c in stack.chunks(idle_sid) for e in c.events if isinstance(e, Notice)]
    assert len(alive) >= INTERRUPTED_AFTER_S // KEEPALIVE_S
    assert {notice.code for notice in alive} == {KEEPALIVE}
    assert idle_sid in stack.listed("active")
    idle.sendline("exit")
    idle.expect(pexpect.EOF)
    wait_for(lambda: stack.row(idle_sid)["status"] == "closed", what="closed", timeout=30)


def test_the_gateways_end_after_the_store_gave_up_stands_and_the_record_says_so(
    stack: Stack,
) -> None:
    child, sid = stack.shell(stack.one)
    stack.one.kill()
    child.expect(pexpect.EOF)
    wait_for(
        lambda: stack.row(sid)["status"] == "interrupted",
        what="the store to give the session up",
        timeout=60,
    )
    marked = stack.row(sid)["interrupted_at"]
    assert marked is not None
    stack.one.start()  # after the timeout: it ends the session, signed
    wait_for(
        lambda: stack.row(sid)["end_reason"] is not None,
        what="the restarted gateway's end",
        timeout=60,
    )
    row = stack.row(sid)
    assert (row["status"], row["verified"], row["interrupted_at"]) == ("interrupted", True, marked)
    assert row["end_reason"].startswith("interrupted: the gateway stopped unexpectedly")
    [verdict] = json.loads(stack.run("verify", sid, "--json", check=True).stdout)
    assert (verdict["status"], verdict["interrupted"]) == ("ok", "gateway")
    shown = stack.run("show", sid, check=True).stdout.decode()
    said = _field(shown, "interrupted")
    assert said.startswith("by its gateway, which had stopped unexpectedly (a signed end)")
    assert "the store had marked it interrupted at " in said
    assert "its gateway's signed end came later and stands" in said


def _field(shown: str, name: str) -> str:
    """The value of one ``show`` line (``NAME  value``)."""
    for line in shown.splitlines():
        label, _, value = line.strip().partition("  ")
        if label == name:
            return value.strip()
    raise AssertionError(f"no {name!r} in:\n{shown}")
