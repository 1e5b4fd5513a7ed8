"""The gateway with the real OpenSSH client in front and a real sshd behind."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pexpect
import pytest

from sshtrail.chain import Status, verify_chain
from sshtrail.events import End, Event, Exec, Exit, Input, MaskedInput, Output, Resize, Start
from sshtrail.wire import Chunk
from tests.support.gateway import GatewayProcess, published
from tests.support.kafka import Broker
from tests.support.sshd import SshdTarget

pytestmark = pytest.mark.integration


@pytest.fixture
def gateway(tmp_path: Path, broker: Broker, sshd: SshdTarget) -> Iterator[GatewayProcess]:
    process = GatewayProcess(tmp_path / "gw", broker.bootstrap_servers, sshd)
    process.start()
    yield process
    if process.process is not None and process.process.poll() is None:
        process.stop()


def only_session(gateway: GatewayProcess) -> list[Chunk]:
    sessions = published(gateway.servers, gateway.topic)
    assert len(sessions) == 1, sessions.keys()
    [entries] = sessions.values()
    assert len({partition for partition, _, _ in entries}) == 1
    return [chunk for _, _, chunk in entries]


def test_exec_is_exactly_like_direct_and_recorded(
    gateway: GatewayProcess, sshd: SshdTarget
) -> None:
    command = 'printf "%s\\n" "a b" c; echo oops >&2; exit 3'
    direct = subprocess.run(sshd.ssh_command(command), capture_output=True, timeout=30, check=False)
    through = subprocess.run(
        gateway.ssh("alice:t1", command), capture_output=True, timeout=30, check=False
    )
    assert (through.stdout, through.stderr, through.returncode) == (
        direct.stdout,
        direct.stderr,
        direct.returncode,
    )
    assert through.returncode == 3
    chunks = only_session(gateway)
    assert [chunk.seq for chunk in chunks] == list(range(len(chunks)))
    verdict = verify_chain([(c.seq, c.raw) for c in chunks], {gateway.signing_key})
    assert verdict.status is Status.OK, verdict.detail
    events = [event for chunk in chunks for event in chunk.events]
    start = events[0]
    assert isinstance(start, Start)
    assert (start.operator, start.target, start.user, start.term) == (
        "alice",
        "t1",
        sshd.user,
        "",
    )
    assert Exec(events[1].t, "exec", command.encode()) == events[1]
    stdout = b"".join(e.data for e in events if isinstance(e, Output) and not e.stderr)
    stderr = b"".join(e.data for e in events if isinstance(e, Output) and e.stderr)
    assert (stdout, stderr) == (b"a b\nc\n", b"oops\n")
    assert [e.status for e in events if isinstance(e, Exit)] == [3]
    end = events[-1]
    assert isinstance(end, End)
    assert end.reason == "exit status 3"


@pytest.mark.parametrize("codec", ["none", "zstd"])
def test_recordings_published_with_another_compression_are_whole(
    tmp_path: Path, broker: Broker, sshd: SshdTarget, codec: str
) -> None:
    gateway = GatewayProcess(
        tmp_path / "gw", broker.bootstrap_servers, sshd, kafka_extra=f'compression = "{codec}"'
    )
    gateway.start()
    try:
        blob = tmp_path / "blob"
        blob.write_bytes(os.urandom(300_000))
        through = subprocess.run(
            gateway.ssh("alice:t1", f"cat {blob}"), capture_output=True, timeout=30, check=True
        )
    finally:
        gateway.stop()
    chunks = only_session(gateway)
    verdict = verify_chain([(c.seq, c.raw) for c in chunks], {gateway.signing_key})
    assert verdict.status is Status.OK, verdict.detail
    output = b"".join(e.data for e in events_of(chunks) if isinstance(e, Output))
    assert output == through.stdout == blob.read_bytes()


def events_of(chunks: list[Chunk]) -> list[Event]:
    return [event for chunk in chunks for event in chunk.events]


def spawn(argv: list[str]) -> pexpect.spawn:
    return pexpect.spawn(
        argv[0], argv[1:], timeout=30, dimensions=(24, 80), env={**os.environ, "TERM": "xterm"}
    )


def test_interactive_pty_session_with_resize_is_recorded_in_order(
    gateway: GatewayProcess,
) -> None:
    child = spawn(gateway.ssh("alice:t1", tty=True))
    try:
        child.sendline("PS1='READY> '")
        child.expect("READY> ")
        child.sendline("echo $((6*7))")
        child.expect("42")
        child.setwinsize(30, 100)
        child.sendline("stty size")
        child.expect("30 100")
        child.sendline("exit 4")
        child.expect(pexpect.EOF)
    finally:
        child.close()
    assert child.exitstatus == 4
    chunks = only_session(gateway)
    assert [chunk.seq for chunk in chunks] == list(range(len(chunks)))
    assert verify_chain([(c.seq, c.raw) for c in chunks], {gateway.signing_key}).status is Status.OK
    events = events_of(chunks)
    start = events[0]
    assert isinstance(start, Start)
    assert (start.term, start.cols, start.rows) == ("xterm", 80, 24)
    assert events[1] == Exec(events[1].t, "shell", b"")
    typed = b"".join(e.data for e in events if isinstance(e, Input))
    assert b"PS1='READY> '\necho $((6*7))\n" in typed  # typed ahead, echoed by the tty
    output = b"".join(e.data for e in events if isinstance(e, Output))
    assert b"42" in output
    assert b"30 100" in output
    assert any(isinstance(e, Resize) and (e.cols, e.rows) == (100, 30) for e in events)
    assert [e.status for e in events if isinstance(e, Exit)] == [4]
    assert [e.t for e in events] == sorted(e.t for e in events)


def test_a_password_typed_at_a_no_echo_prompt_never_reaches_kafka(
    gateway: GatewayProcess,
) -> None:
    secret = "Tr0ub4dor-and-3"
    command = 'read -s -p "[sudo] password for alice: " pw; echo; echo "got ${#pw} characters"'
    child = spawn(gateway.ssh("alice:t1", command, tty=True))
    try:
        child.expect("password for alice: ")
        child.sendline(secret)
        child.expect(f"got {len(secret)} characters")
        child.expect(pexpect.EOF)
    finally:
        child.close()
    chunks = only_session(gateway)
    for chunk in chunks:
        assert secret.encode() not in chunk.raw
        assert b"Tr0ub" not in chunk.raw
    events = events_of(chunks)
    assert sum(e.count for e in events if isinstance(e, MaskedInput)) == len(secret)


def test_refusals_are_clear_recorded_and_harmless(gateway: GatewayProcess) -> None:
    def attempt(login: str, key: Path | None = None) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(
            gateway.ssh(login, "true", key=key), capture_output=True, timeout=30, check=False
        )

    wrong_key = attempt("alice:t1", key=gateway.stranger_key)
    assert wrong_key.returncode == 255
    assert b"Permission denied (publickey)" in wrong_key.stderr
    unknown = attempt("zed:t1")
    assert unknown.returncode == 255
    assert b"Permission denied" in unknown.stderr
    no_target = attempt("alice")
    assert no_target.returncode == 1
    assert b"no target given. Log in as alice@TARGET; your targets: fwd, imposter, t1" in (
        no_target.stderr
    )
    not_allowed = attempt("alice:secret")
    assert not_allowed.returncode == 1
    assert b"target 'secret' is not one of yours: fwd, imposter, t1" in not_allowed.stderr
    nothing_allowed = attempt("bob:t1")
    assert b"target 't1' is not one of yours: (none)" in nothing_allowed.stderr
    mismatch = attempt("alice:imposter")
    assert mismatch.returncode == 1
    assert b"presented a host key that is not the one pinned for it" in mismatch.stderr
    assert attempt("alice:t1").returncode == 0  # nothing else affected

    sessions = published(gateway.servers, gateway.topic, complete=7)
    reasons = []
    for entries in sessions.values():
        end = entries[-1][2].events[-1]
        start = entries[0][2].events[0]
        assert isinstance(end, End)
        assert isinstance(start, Start)
        reasons.append((start.operator, start.target, end.reason))
    assert sorted(reasons) == sorted(
        [
            # every failed attempt is counted, with its method
            ("alice", "t1", "refused: authentication failed (1 failed attempt: publickey 1)"),
            ("zed", "t1", "refused: unknown operator (1 failed attempt: publickey 1)"),
            ("alice", "", "refused: no target given"),
            ("alice", "secret", "refused: target not allowed"),
            ("bob", "t1", "refused: target not allowed"),
            ("alice", "imposter", "refused: target host key mismatch"),
            ("alice", "t1", "exit status 0"),
        ]
    )
