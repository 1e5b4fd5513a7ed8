"""What a session asked the gateway for -- its environment, its terminal size asked for
and granted, its signals, its forwarded connections -- listed alike by ``show``, ``show
--json`` and the console's session page; and a command's text read back there exactly as
typed, escaped once (issue 33).

Sessions through a real gateway to a real sshd: OpenSSH with ``SetEnv`` and a 5000x5000
terminal, an OpenSSH exec whose command holds ``\\033``, ``\\\\``, a tab and a real ESC,
and an asyncssh client that sends signals (one with a hostile name) and forwards a TCP
connection on the same SSH connection.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import os
import socketserver
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pexpect
import pytest

from tests.support.auditors import auditor
from tests.support.browser import console_running, needs_chromium, sign_in
from tests.support.cli import sshtrail
from tests.support.escapes import read_back
from tests.support.gateway import GatewayProcess
from tests.support.kafka import Broker
from tests.support.recorded import Recorded
from tests.support.sshd import SshdTarget

pytestmark = pytest.mark.e2e

ANN, ANN_PASSWORD = "ann", "ann-password-1"
#: Typed as an exec command: a literal ``\033`` and ``\\``, a tab, a real ESC, ``{}``, ``%s``.
TYPED = "printf '\\033]0;title\\a' \\\\ \tx \x1b[2J; echo {} %s typed-done"
#: A signal name no client should send: it would clear an auditor's screen if printed raw.
HOSTILE_SIGNAL = "USR2\x1b[2J\x1b]0;owned\x07"


@dataclass
class Stack:
    url: str
    config: Path


class _Pong(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        while data := self.request.recv(100):
            self.request.sendall(b"pong:" + data)


async def _signals_and_a_forward(gateway: GatewayProcess, pong: int) -> None:
    async with gateway.connect("alice:fwd") as conn:
        process = await conn.create_process("sleep 2")
        process.send_signal("USR1")
        process.send_signal(HOSTILE_SIGNAL)
        reader, writer = await conn.open_connection("127.0.0.1", pong)
        writer.write(b"ping")
        assert await asyncio.wait_for(reader.read(100), 20) == b"pong:ping"
        writer.close()
        await asyncio.wait_for(process.wait(), 30)


@pytest.fixture(scope="module")
def stack(
    tmp_path_factory: pytest.TempPathFactory, broker: Broker, sshd: SshdTarget
) -> Iterator[Stack]:
    root = tmp_path_factory.mktemp("requests")
    recorded = Recorded(root, broker, sshd, settings=auditor(ANN, ANN_PASSWORD, role="admin"))
    gateway = recorded.gateway
    # One SetEnv: ssh takes the first value of an option given twice.
    options = ["-o", "SetEnv=LC_FOO=bar API_TOKEN=s3cr3t-value"]
    argv = gateway.ssh("alice:t1", options=options, tty=True)
    child = pexpect.spawn(
        argv[0], argv[1:], timeout=30, env={**os.environ, "TERM": "xterm"}, dimensions=(5000, 5000)
    )
    child.sendline("echo sized-$((1+1))")
    child.expect("sized-2")
    child.sendline("exit")
    child.expect(pexpect.EOF)
    done = subprocess.run(
        gateway.ssh("alice:t1", TYPED), capture_output=True, timeout=30, check=False
    )
    assert b"typed-done" in done.stdout, done.stderr
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Pong)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        asyncio.run(asyncio.wait_for(_signals_and_a_forward(gateway, server.server_address[1]), 60))
    finally:
        server.shutdown()
        server.server_close()
    recorded.stored(sessions=4)
    with console_running(recorded.config, root) as url:
        yield Stack(url, recorded.config)


def _sessions(stack: Stack) -> list[dict[str, Any]]:
    return json.loads(sshtrail(stack.config, "sessions", "--json").stdout)  # type: ignore[no-any-return]


def _one(stack: Stack, **wanted: str) -> dict[str, Any]:
    [found] = [s for s in _sessions(stack) if all(s[k] == v for k, v in wanted.items())]
    return found


def _show(stack: Stack, session: str) -> tuple[str, dict[str, Any]]:
    text = sshtrail(stack.config, "show", session).stdout
    assert b"\x1b" not in text  # nothing recorded reaches the auditor's terminal raw
    return text.decode(), json.loads(sshtrail(stack.config, "show", session, "--json").stdout)


def _field(text: str, name: str) -> list[str]:
    """The texts of ``show``'s lines labelled ``name``, and of the unlabelled lines after."""
    found: list[str] = []
    inside = False
    for line in text.splitlines():
        label = line[:12].strip()
        value = line[14:]
        if label:
            inside = label == name
            if inside:
                found.append(value)
        elif inside:
            found.append(value)
    return found


def test_show_and_json_list_the_environment_and_the_terminal_asked_for_and_granted(
    stack: Stack,
) -> None:
    shell = _one(stack, request="shell")
    text, document = _show(stack, shell["short_id"])
    assert _field(text, "pty size") == ["5000x5000 requested, 1000x500 granted"]
    assert _field(text, "environment") == [
        "2",
        "LC_FOO=bar (passed on)",
        "API_TOKEN=(withheld: a secret's name) (not passed on)",
    ] or _field(text, "environment") == [
        "2",
        "API_TOKEN=(withheld: a secret's name) (not passed on)",
        "LC_FOO=bar (passed on)",
    ]
    assert "s3cr3t-value" not in text
    assert document["terminal_size"] == {"requested": [5000, 5000], "granted": [1000, 500]}
    assert {"name": "LC_FOO", "value": "bar", "accepted": True} in document["environment"]
    assert {"name": "API_TOKEN", "value": None, "accepted": False} in document["environment"]
    assert document["signals"] == []
    assert document["forwards"] == []


def test_show_lists_signals_and_the_forwarded_connection_of_the_same_ssh_connection(
    stack: Stack,
) -> None:
    sleeper = _one(stack, request="exec", command="sleep 2")
    forward = _one(stack, request="direct-tcpip")
    text, document = _show(stack, sleeper["short_id"])
    assert [s["signal"] for s in document["signals"]] == ["USR1", HOSTILE_SIGNAL]
    assert _field(text, "signals") == ["USR1, USR2\\e[2J\\e]0;owned\\x07"]
    [forwarded] = document["forwards"]
    assert forwarded["session"] == forward["session"]
    assert (forwarded["host"], forwarded["bytes_in"], forwarded["bytes_out"]) == (
        "127.0.0.1",
        4,
        9,
    )
    assert len(_field(text, "forwarded")) == 2
    assert "bytes to it, 9 bytes back" in _field(text, "forwarded")[1]
    assert document["terminal_size"] is None
    assert _field(text, "pty size") == ["(no pty)"]


def test_a_command_reads_back_exactly_as_typed_in_show_json_and_the_listing(stack: Stack) -> None:
    typed = _one(stack, command=TYPED)
    text, document = _show(stack, typed["short_id"])
    assert document["command"] == TYPED
    [request] = _field(text, "request")
    assert read_back(request) == f"exec: {TYPED}"  # escaped once: "\\033" reads back "\033"
    listing = sshtrail(stack.config, "sessions", "--format", "csv").stdout
    assert b"\x1b" not in listing
    rows = list(csv.DictReader(io.StringIO(listing.decode())))
    [listed] = [row["REQUEST"] for row in rows if row["ID"] == typed["session"]]
    assert read_back(listed) == f"exec: {TYPED}"


@needs_chromium
def test_the_session_page_lists_the_requests_and_the_command_as_typed(
    stack: Stack, browser: object
) -> None:
    from selenium.webdriver.common.by import By

    d: Any = browser
    sign_in(d, stack.url, ANN, ANN_PASSWORD)
    shell = _one(stack, request="shell")
    d.get(f"{stack.url}/sessions/{shell['session'].replace('-', '')}")
    requests = d.find_element(By.ID, "requests").text
    assert d.find_element(By.ID, "request-pty-size").text.endswith(
        "5000x5000 requested, 1000x500 granted"
    )
    assert "LC_FOO=bar (passed on)" in requests
    assert "API_TOKEN=(withheld: a secret's name) (not passed on)" in requests
    assert "s3cr3t-value" not in d.page_source
    typed = _one(stack, command=TYPED)
    d.get(f"{stack.url}/sessions/{typed['session'].replace('-', '')}")
    cells = d.find_elements(By.CSS_SELECTOR, "#fields tr")
    [request] = [
        row.find_element(By.TAG_NAME, "td").text
        for row in cells
        if row.find_element(By.TAG_NAME, "th").text == "request"
    ]
    assert read_back(request) == f"exec: {TYPED}"
    sleeper = _one(stack, request="exec", command="sleep 2")
    d.get(f"{stack.url}/sessions/{sleeper['session'].replace('-', '')}")
    assert "USR1, USR2\\e[2J\\e]0;owned\\x07" in d.find_element(By.ID, "request-signals").text
    assert "127.0.0.1:" in d.find_element(By.ID, "requests").text
