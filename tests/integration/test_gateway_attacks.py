"""The attacks of issue 23, through the real gateway, each with its defence.

Real OpenSSH and asyncssh clients, the real gateway, real sshd targets (and a
second, rogue sshd behind a proxy), the embedded broker, and a store and an
index member where the defence is theirs.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import subprocess
import time
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import asyncssh
import pexpect
import pytest

from sshtrail import escrow
from sshtrail.broker import free_port
from sshtrail.events import Env, Notice, Start
from sshtrail.passwords import hash_password
from tests.support.cli import sshtrail
from tests.support.consumers import start_member, wait_for, write_config
from tests.support.gateway import GatewayProcess, published, toml_value
from tests.support.indexmember import index_config, index_member, searched
from tests.support.kafka import Broker
from tests.support.proxy import StallingProxy
from tests.support.sshd import SshdTarget

pytestmark = pytest.mark.integration

PASSWORD = "correct horse battery staple"


def _gateway(
    tmp_path: Path,
    broker: Broker,
    sshd: SshdTarget,
    *,
    extra: str = "",
    config_tail: str = "",
    alice_targets: Sequence[str] = (),
) -> GatewayProcess:
    return GatewayProcess(
        tmp_path / "gw",
        broker.bootstrap_servers,
        sshd,
        dead_letters=True,
        extra=extra,
        config_tail=config_tail,
        alice_targets=alice_targets,
    )


@pytest.fixture
def gateway(tmp_path: Path, broker: Broker, sshd: SshdTarget) -> Iterator[GatewayProcess]:
    pat = f"""
[[operators]]
name = "pat"
password_hash = {toml_value(hash_password(PASSWORD))}
targets = ["t1"]
"""
    process = _gateway(
        tmp_path,
        broker,
        sshd,
        extra="max_auth_tries = 4\nauth_failures_per_operator = 8\nauth_attempts_per_minute = 100",
        config_tail=pat,
    )
    process.start()
    yield process
    process.stop()


class Guesser(asyncssh.SSHClient):
    """Tries passwords one after the other on one connection."""

    def __init__(self, guesses: list[str]) -> None:
        self._guesses = list(guesses)
        self.tried = 0

    def password_auth_requested(self) -> str | None:
        if not self._guesses:
            return None
        self.tried += 1
        return self._guesses.pop(0)


async def _guess(gateway: GatewayProcess, login: str, guesses: list[str]) -> tuple[bool, int]:
    client = Guesser(guesses)
    try:
        conn, _ = await asyncssh.create_connection(
            lambda: client,
            "127.0.0.1",
            gateway.port,
            username=login,
            known_hosts=str(gateway.known_hosts),
            client_keys=None,
            preferred_auth="password",
        )
    except (asyncssh.PermissionDenied, asyncssh.DisconnectError, ConnectionError):
        return False, client.tried
    async with conn:
        await conn.run("true", check=False)
    return True, client.tried


def _ends(gateway: GatewayProcess, count: int) -> list[tuple[str, str]]:
    sessions = published(gateway.servers, gateway.topic, complete=count)
    found = []
    for entries in sessions.values():
        start, end = entries[0][2].events[0], entries[-1][2].end
        if isinstance(start, Start) and end is not None:
            found.append((start.operator, end.reason))
    return found


def test_guesses_are_limited_per_attempt_and_each_is_recorded(gateway: GatewayProcess) -> None:
    # One connection, many guesses: cut off after max_auth_tries (4), not 100 later.
    ok, tried = asyncio.run(_guess(gateway, "pat:t1", ["wrong"] * 20 + [PASSWORD]))
    assert (ok, tried) == (False, 4)
    # A success after failures is recorded with them.
    ok, tried = asyncio.run(_guess(gateway, "pat:t1", ["nope", "nope2", PASSWORD]))
    assert (ok, tried) == (True, 3)
    # Failures for the name across connections: beyond 8 a minute, even the right
    # password is not looked at.
    ok, _ = asyncio.run(_guess(gateway, "pat:t1", ["x", "y"]))
    assert not ok
    ok, tried = asyncio.run(_guess(gateway, "pat:t1", [PASSWORD]))
    assert not ok
    reasons = _ends(gateway, 4)
    assert (
        "pat",
        "refused: too many authentication failures (4 failed attempts: password 4)",
    ) in reasons
    assert ("pat", "refused: too many failures for this operator") in reasons
    sessions = published(gateway.servers, gateway.topic, complete=4)
    notices = [
        e.text
        for entries in sessions.values()
        for _, _, c in entries
        for e in c.events
        if isinstance(e, Notice) and e.code == "auth"
    ]
    assert notices == ["logged in after 2 failed attempts: password 2"]


def test_logins_go_on_while_passwords_are_guessed(gateway: GatewayProcess) -> None:
    """Another operator logs in and runs a command while eight connections guess (until
    the limits cut them off), and no guess gets in. How long the login takes against a
    quiet gateway (scrypt on the event loop made it 17-37 s) is measured by
    ``python -m bench.logins``."""

    async def run() -> list[tuple[bool, int]]:
        guessers = [asyncio.create_task(_guess(gateway, "pat:t1", ["wrong"] * 4)) for _ in range(8)]
        await asyncio.sleep(0.3)  # the guessing is under way
        async with gateway.connect() as conn:
            result = await conn.run("echo still-here", check=True)
        assert result.stdout == "still-here\n"
        return await asyncio.gather(*guessers)

    guessed = asyncio.run(run())
    assert all(tried >= 1 for _, tried in guessed)
    assert not any(ok for ok, _ in guessed)


def test_every_name_is_offered_the_same_methods(gateway: GatewayProcess) -> None:
    def offered(login: str) -> str:
        result = subprocess.run(
            gateway.ssh(login, "true", options=["-v", "-o", "PreferredAuthentications=none"]),
            capture_output=True,
            timeout=30,
            check=False,
        )
        found = re.search(rb"Authentications that can continue: (\S+)", result.stderr)
        assert found is not None, result.stderr
        return found.group(1).decode()

    methods = {offered(login) for login in ("pat:t1", "alice:t1", "nobody-at-all:t1")}
    assert methods == {"publickey,keyboard-interactive,password"}  # one answer for every name


def test_environment_is_recorded_and_passed_on_only_where_allowed(
    gateway: GatewayProcess,
) -> None:
    env = {**os.environ, "LC_PAYLOAD": "touch /tmp/pwned", "API_TOKEN": "s3cr3t"}
    options = ["-o", "SendEnv=LC_PAYLOAD", "-o", "SendEnv=API_TOKEN"]
    command = 'printf "[%s][%s]" "$LC_PAYLOAD" "$API_TOKEN"'
    allowed = subprocess.run(
        gateway.ssh("alice:t1", command, options=options),
        env=env,
        capture_output=True,
        timeout=30,
        check=False,
    )
    refused = subprocess.run(
        gateway.ssh("alice:fwd", command, options=options),
        env=env,
        capture_output=True,
        timeout=30,
        check=False,
    )
    assert allowed.stdout == b"[touch /tmp/pwned][]"  # t1 accepts LC_*, sshd refuses API_TOKEN
    assert refused.stdout == b"[][]"  # fwd accepts nothing
    sessions = published(gateway.servers, gateway.topic, complete=2)
    recorded = {
        (start.target, e.name, e.value, e.accepted)
        for entries in sessions.values()
        if isinstance(start := entries[0][2].events[0], Start)
        for _, _, chunk in entries
        for e in chunk.events
        if isinstance(e, Env)
    }
    assert ("t1", b"LC_PAYLOAD", b"touch /tmp/pwned", True) in recorded
    assert ("fwd", b"LC_PAYLOAD", b"touch /tmp/pwned", False) in recorded
    assert ("t1", b"API_TOKEN", None, False) in recorded  # a secret's value is never kept
    assert b"s3cr3t" not in json.dumps([str(r) for r in recorded]).encode()


def test_a_huge_terminal_is_cut_down_and_the_index_survives(
    tmp_path: Path, gateway: GatewayProcess, broker: Broker
) -> None:
    config = index_config(tmp_path, broker.bootstrap_servers, gateway.topic)
    index = start_member(config, "index", memory_limit=1 << 30)  # pyte wanted 4 G cells here

    async def huge() -> str:
        async with gateway.connect() as conn:
            result = await conn.run(
                "stty size; printf '\\033[2J%.0s' $(seq 1 2000); echo huge-done",
                term_type="xterm",
                term_size=(4294967295, 24),
                check=False,
            )
            return str(result.stdout)

    try:
        shown = asyncio.run(huge())
        banner = "This session is recorded and may be watched.\r\n"
        assert shown.startswith(banner + "24 1000")  # the target got what the gateway granted
        mark = f"after-{uuid.uuid4().hex[:8]}"
        subprocess.run(gateway.ssh("alice:t1", f"echo {mark}"), check=True, timeout=30)
        db = tmp_path / "search.db"

        def indexed() -> bool:
            found = sshtrail(config, "search", mark, "--json", check=False, timeout=30)
            return found.returncode == 0 and mark.encode() in found.stdout

        wait_for(indexed, timeout=60, what="the next session in the index")
        assert db.exists()
        assert index.process.poll() is None, index.stderr
    finally:
        index.stop()
    sessions = published(gateway.servers, gateway.topic, complete=2)
    starts = [entries[0][2].events[0] for entries in sessions.values()]
    assert any(isinstance(s, Start) and s.term and s.cols == 1000 for s in starts)
    notices = [
        e
        for entries in sessions.values()
        for _, _, c in entries
        for e in c.events
        if isinstance(e, Notice)
    ]
    assert [n.text for n in notices] == ["terminal size 4294967295x24 requested, 1000x24 granted"]


def test_commands_typed_with_echo_off_are_sealed_and_can_be_revealed(
    tmp_path: Path, broker: Broker, sshd: SshdTarget
) -> None:
    escrow.generate(tmp_path / "escrow.key")
    public = (tmp_path / "escrow.key.pub").read_text().strip()
    gateway = _gateway(tmp_path, broker, sshd, extra=f"escrow_public_key = {toml_value(public)}")
    gateway.start()
    store_url = f"sqlite:///{tmp_path / 'store.db'}"
    config = write_config(
        tmp_path / "members.toml", broker.bootstrap_servers, gateway.topic, store_url
    )
    sshtrail(config, "db", "upgrade")
    store = start_member(config, "store")
    mark = uuid.uuid4().hex[:8]
    try:
        argv = gateway.ssh("alice:t1", tty=True)
        shell = pexpect.spawn(
            argv[0], argv[1:], timeout=30, env={**os.environ, "TERM": "dumb", "PS1": "READY> "}
        )
        # A shell without line editing, as the terminal driver's echo is then all there is
        # (bash's readline echoes by itself, whatever stty says).
        shell.sendline("exec /bin/sh")
        shell.sendline("PS1='R'$((1+1))'> '")  # the prompt itself is not in what is typed
        shell.expect("R2> ")
        shell.sendline("stty -echo")
        shell.expect("R2> ")
        shell.sendline(f"touch /tmp/blind-{mark}")  # typed blind: never echoed
        shell.expect("R2> ")
        shell.sendline("stty echo; exit")
        shell.expect(pexpect.EOF)

        def suspicious() -> list[dict[str, Any]]:
            found = sshtrail(config, "sessions", "--masked-input", "suspicious", "--json")
            return list(json.loads(found.stdout))

        wait_for(lambda: bool(suspicious()), timeout=60, what="the session listed as suspicious")
        [row] = suspicious()
        sid = row["id"]
        table = sshtrail(config, "sessions").stdout.decode().splitlines()
        assert table[0].split()[-2:] == ["MASKED", "FLAGS"]
        assert [line.split()[-2:] for line in table[1:]] == [["suspicious", "blind-eval"]]
        raw = sshtrail(config, "export", sid, "--format", "json").stdout
        plain = b"".join(
            base64.b64decode(event.get("data", "")) for event in map(json.loads, raw.splitlines())
        )
        assert f"blind-{mark}".encode() not in plain  # not in plain text anywhere
        key = str(tmp_path / "escrow.key")
        revealed = sshtrail(config, "reveal", sid, "--key", key, "--reason", "test")
        assert f"blind-{mark}".encode() in revealed.stdout.replace(b"\n", b"")
        assert b"reveal: masked input of session" in revealed.stderr
    finally:
        store.stop()
        gateway.stop()


def _shell(gateway: GatewayProcess, shell: str, term: str) -> pexpect.spawn:
    """A terminal session through the gateway, in ``shell``, at a prompt ``R2> `` (made
    by the shell, so that the echo of what is typed is never taken for it)."""
    argv = gateway.ssh("alice:t1", tty=True)
    session = pexpect.spawn(argv[0], argv[1:], timeout=30, env={**os.environ, "TERM": term})
    session.sendline(f"exec {shell}")
    session.sendline("PS1='R'$((1+1))'> '")
    session.expect("R2> ")
    return session


def _masked_marks(config: Path, count: int) -> list[tuple[str | None, int]]:
    """The masked-input mark and blind lines of the store's ended sessions, oldest first,
    once ``count`` of them are stored."""

    def ended() -> list[dict[str, Any]]:
        found = json.loads(sshtrail(config, "sessions", "--json").stdout)
        return [row for row in found if row["end_reason"] is not None]

    wait_for(lambda: len(ended()) >= count, timeout=60, what=f"{count} sessions stored")
    rows = sorted(ended(), key=lambda row: str(row["started_at"]))
    return [(row["masked_input"], row["masked_lines"]) for row in rows]


def test_input_a_screen_showed_is_not_masked_and_blind_input_run_is_suspicious(
    tmp_path: Path, broker: Broker, sshd: SshdTarget
) -> None:
    gateway = _gateway(tmp_path, broker, sshd)
    gateway.start()
    config = write_config(
        tmp_path / "members.toml",
        broker.bootstrap_servers,
        gateway.topic,
        f"sqlite:///{tmp_path / 'store.db'}",
    )
    sshtrail(config, "db", "upgrade")
    store = start_member(config, "store")
    mark = uuid.uuid4().hex[:8]
    try:
        # An editor: vim draws the text typed, not the "i" before it, so the gateway
        # masks the keys; they are the editor's all the same.
        vim = _shell(gateway, "/bin/bash --norc --noprofile", "xterm")
        notes = Path(f"/tmp/notes-{mark}.txt")  # short: a typed line that wraps is masked
        vim.sendline(f"vim -u NONE {notes}")
        vim.expect(notes.name)
        vim.send(f"ihello from vim {mark}")
        vim.expect(f"hello from vim {mark}")
        vim.send("\x1b")
        vim.send(":wq\r")
        vim.expect("R2> ")
        vim.sendline("exit")
        vim.expect(pexpect.EOF)
        assert notes.read_text() == f"hello from vim {mark}\n"
        # A line typed blind into a variable, and run.
        run = _shell(gateway, "/bin/bash --norc --noprofile", "dumb")
        run.sendline('read -s c; eval "$c"')
        run.sendline(f"touch /tmp/run-{mark}")
        run.expect("R2> ")
        run.sendline("exit")
        run.expect(pexpect.EOF)
        # Echo turned off by a command spelled to dodge a word match, two lines blind
        # (sh: bash's readline would echo them itself), then Ctrl-D.
        stty = _shell(gateway, "/bin/sh", "dumb")
        stty.sendline("stty -ec''ho")
        stty.expect("R2> ")
        for line in ("true", f"touch /tmp/stty-{mark}"):
            stty.sendline(line)
            stty.expect("R2> ")
        stty.sendcontrol("d")
        stty.expect(pexpect.EOF)
        # Passwords at prompts: only masked.
        for prompt in ("read -s c", "read -s -p 'Password: ' pw"):
            password = _shell(gateway, "/bin/bash --norc --noprofile", "dumb")
            password.sendline(prompt)
            time.sleep(0.5)  # the prompt has turned echo off
            password.sendline("correct horse")
            password.expect("R2> ")
            password.sendline("exit")
            password.expect(pexpect.EOF)
        assert Path(f"/tmp/run-{mark}").exists()
        assert Path(f"/tmp/stty-{mark}").exists()
        assert _masked_marks(config, 5) == [
            (None, 0),
            ("suspicious", 1),
            ("suspicious", 2),
            ("masked", 1),
            ("masked", 1),
        ]
    finally:
        store.stop()
        gateway.stop()
        for made in (f"/tmp/run-{mark}", f"/tmp/stty-{mark}", f"/tmp/notes-{mark}.txt"):
            Path(made).unlink(missing_ok=True)


@pytest.mark.parametrize("workers", [1, 2])
def test_first_use_of_a_target_is_pinned_once_and_a_rogue_is_refused(
    tmp_path: Path, broker: Broker, sshd: SshdTarget, workers: int
) -> None:
    rogue = SshdTarget(sshd.binary, tmp_path / "rogue")
    rogue.start()
    # The rogue lets the gateway in with its key: it would have been a full session.
    (rogue.workdir / "authorized_keys").write_bytes(
        sshd.client_key.with_suffix(".pub").read_bytes()
    )
    try:
        with StallingProxy(sshd.port, rogue.port) as proxy:
            tail = f"""
[[targets]]
name = "tofu"
host = "127.0.0.1"
port = {proxy.port}
user = {toml_value(sshd.user)}
key = {toml_value(str(sshd.client_key))}
trust_on_first_use = true
"""
            gateway = _gateway(tmp_path, broker, sshd, config_tail=tail, alice_targets=["tofu"])
            gateway.workers = workers  # with 2, the two logins may land on either worker
            gateway.start()
            try:
                runs = [
                    subprocess.Popen(
                        gateway.ssh("alice:tofu", "echo reached"),
                        stdout=subprocess.PIPE,
                        stderr=subprocess.PIPE,
                    )
                    for _ in range(2)
                ]
                outcomes = sorted(run.communicate(timeout=60)[0] for run in runs)
            finally:
                gateway.stop()
            pinned = (tmp_path / "gw" / "state" / "gateway" / "known_hosts").read_text()
    finally:
        rogue.stop()
    assert outcomes == [b"", b"reached\n"]  # one got through, the other was refused
    [line] = pinned.splitlines()
    # The key pinned is the real host's (the proxy's first connection), not the rogue's.
    real = sshd.host_key.with_suffix(".pub").read_text().split()[:2]
    fake = rogue.host_key.with_suffix(".pub").read_text().split()[:2]
    assert real != fake
    assert line.split()[1:3] == real, line
    reasons = sorted(reason for _op, reason in _ends(gateway, 2))
    assert reasons == ["exit status 0", "refused: target host key mismatch"]


@pytest.fixture
def indexed(tmp_path: Path, gateway: GatewayProcess, broker: Broker) -> Iterator[Path]:
    """An index member on the gateway's topic; yields the settings to search with."""
    with index_member(tmp_path, broker.bootstrap_servers, gateway.topic) as config:
        yield config


def test_what_search_used_to_miss_is_found(gateway: GatewayProcess, indexed: Path) -> None:
    mark = uuid.uuid4().hex[:8]
    # Commands on stdin, without a PTY.
    subprocess.run(
        gateway.ssh("alice:t1"),
        input=f"echo nopty-{mark}\nuname\n".encode(),
        check=True,
        timeout=30,
        capture_output=True,
    )
    # A line far longer than one document, found at its end.
    subprocess.run(
        gateway.ssh("alice:t1", f"printf '%05000d{mark}-tail\\n' 7"),
        check=True,
        timeout=30,
        capture_output=True,
    )
    # Text a carriage return let the program write over.
    subprocess.run(
        gateway.ssh("alice:t1", f"printf 'secret-{mark}\\rcovered   \\n'"),
        check=True,
        timeout=30,
        capture_output=True,
    )
    wait_for(lambda: bool(searched(indexed, f"secret-{mark}")), timeout=60, what="the overwrite")
    commands = searched(indexed, f"nopty-{mark}", "--kind", "command")
    assert [hit["text"] for hit in commands] == [f"echo nopty-{mark}"]
    assert searched(indexed, f"{mark}-tail")
    # The exec command holds it too; the output as the screen showed it, before the overwrite:
    overwritten = searched(indexed, f"secret-{mark}", "--kind", "output")
    assert [hit["text"] for hit in overwritten] == [f"secret-{mark}"]


def test_one_flooding_session_does_not_hold_up_the_others_search(
    gateway: GatewayProcess, indexed: Path
) -> None:
    flood = subprocess.Popen(
        gateway.ssh(
            "alice:t1",
            "head -c 30000000 /dev/zero; for i in $(seq 1 20000); do "
            "printf '\\033[2J\\033[H'; done; echo flood-done",
        ),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        time.sleep(2)  # the flood is under way, its chunks reaching the index
        mark = f"fair-{uuid.uuid4().hex[:8]}"
        subprocess.run(
            gateway.ssh("alice:t1", f"echo {mark}"), check=True, timeout=30, capture_output=True
        )
        # It took minutes, behind the flood; how long it takes now is measured by
        # bench/index_fairness.py at the full size (300 MB).
        wait_for(lambda: bool(searched(indexed, mark)), timeout=60, what="the other session")
    finally:
        flood.wait(120)


def test_errors_say_nothing_an_operator_or_a_log_reader_should_not_know(
    tmp_path: Path, broker: Broker, sshd: SshdTarget
) -> None:
    closed = free_port()
    tail = f"""
[[targets]]
name = "down"
host = "127.0.0.1"
port = {closed}
key = {toml_value(str(sshd.client_key))}
host_keys = ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBfYyzQqBE8uXZx+4MSS0nUxf1i+Hh2mJsk4r4qCmCdh"]
"""
    gateway = _gateway(tmp_path, broker, sshd, config_tail=tail, alice_targets=["down"])
    gateway.start()
    try:
        result = subprocess.run(
            gateway.ssh("alice:down", "true"), capture_output=True, timeout=30, check=False
        )
    finally:
        log = gateway.stop()
    assert b"sshtrail: cannot reach target down" in result.stderr
    assert str(closed).encode() not in result.stderr  # the address stays in the log
    assert f"127.0.0.1:{closed}" in log
    settings = tmp_path / "search.toml"
    settings.write_text('[search]\nurl = "postgresql://auditor:hunter2@127.0.0.1:1/index"\n')
    search = sshtrail(settings, "search", "anything", check=False)
    assert search.returncode != 0
    assert b"hunter2" not in search.stderr + search.stdout
    assert b"auditor:***@127.0.0.1:1/index" in search.stderr
