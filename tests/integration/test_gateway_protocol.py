"""SSH features through the gateway as on a direct connection, and what it refuses."""

from __future__ import annotations

import asyncio
import os
import socket
import socketserver
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import asyncssh
import pytest

from sshtrail.broker import free_port
from sshtrail.events import End, Exec, Exit, Input, Output
from sshtrail.wire import Chunk
from tests.support.gateway import GatewayProcess, published, toml_value
from tests.support.kafka import Broker
from tests.support.sshd import SshdTarget
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration


@pytest.fixture
def gateway(tmp_path: Path, broker: Broker, sshd: SshdTarget) -> Iterator[GatewayProcess]:
    process = GatewayProcess(
        tmp_path / "gw", broker.bootstrap_servers, sshd, extra="idle_timeout_s = 2"
    )
    process.start()
    yield process
    process.stop()


Completed = subprocess.CompletedProcess[bytes]


def both(gateway: GatewayProcess, sshd: SshdTarget, *remote: str) -> tuple[Completed, Completed]:
    opts: list[str] = []
    direct = subprocess.run(
        sshd.ssh_command(*remote, options=opts), capture_output=True, timeout=30, check=False
    )
    through = subprocess.run(
        gateway.ssh("alice:t1", *remote, options=opts), capture_output=True, timeout=30, check=False
    )
    return direct, through


def test_exit_by_signal_is_passed_on(gateway: GatewayProcess, sshd: SshdTarget) -> None:
    direct, through = both(gateway, sshd, "kill -TERM $$")
    assert through.returncode == direct.returncode == 255
    assert through.stderr == direct.stderr
    ends = [e[-1][2].events for e in published(gateway.servers, gateway.topic).values()]
    [events] = ends
    assert any(isinstance(e, Exit) and e.signal == "TERM" for e in events)
    assert isinstance(events[-1], End)
    assert events[-1].reason == "signal TERM"


def test_quoting_stdin_and_env_requests_as_direct(
    gateway: GatewayProcess, sshd: SshdTarget
) -> None:
    command = 'printf \'[%s]\' "$SSHTRAIL_TEST_GREETING" "$NOT_ACCEPTED"; wc -c'
    options = ["-o", "SetEnv=SSHTRAIL_TEST_GREETING=hi", "-o", "SetEnv=NOT_ACCEPTED=x"]
    direct = subprocess.run(
        sshd.ssh_command(command, options=options),
        input=b"x" * 1000,
        capture_output=True,
        timeout=30,
        check=False,
    )
    through = subprocess.run(
        gateway.ssh("alice:t1", command, options=options),
        input=b"x" * 1000,
        capture_output=True,
        timeout=30,
        check=False,
    )
    assert through.stdout == direct.stdout == b"[hi][]1000\n"


def test_sftp_subsystem_passes_through_and_is_recorded(
    gateway: GatewayProcess, tmp_path: Path
) -> None:
    payload = tmp_path / "payload.bin"
    payload.write_bytes(bytes(range(256)) * 400)
    back = tmp_path / "back.bin"
    remote = tmp_path / "remote.bin"
    batch = tmp_path / "batch"
    batch.write_text(f"put {payload} {remote}\nget {remote} {back}\n")
    sftp = [
        "sftp",
        "-F",
        "none",
        "-b",
        str(batch),
        "-P",
        str(gateway.port),
        "-i",
        str(gateway.operator_key),
        "-o",
        "IdentitiesOnly=yes",
        "-o",
        f"UserKnownHostsFile={gateway.known_hosts}",
        "-o",
        "User=alice:t1",
        "127.0.0.1",
    ]
    result = subprocess.run(sftp, capture_output=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    assert back.read_bytes() == payload.read_bytes()
    [entries] = published(gateway.servers, gateway.topic).values()
    events = [event for _, _, chunk in entries for event in chunk.events]
    assert any(
        isinstance(e, Exec) and e.mode == "subsystem" and e.command == b"sftp" for e in events
    )


def test_several_channels_on_one_connection(gateway: GatewayProcess) -> None:
    async def two_channels() -> list[str]:
        async with gateway.connect() as conn:
            results = await asyncio.gather(
                conn.run("sleep 0.3; echo first", check=True),
                conn.run("echo second", check=True),
            )
        return [str(result.stdout) for result in results]

    assert asyncio.run(two_channels()) == ["first\n", "second\n"]
    assert len(published(gateway.servers, gateway.topic, complete=2)) == 2


def test_forwarding_and_agent_are_refused(gateway: GatewayProcess) -> None:
    async def attempt() -> tuple[str, str]:
        async with gateway.connect() as conn:
            with pytest.raises(asyncssh.ChannelOpenError):
                await conn.open_connection("127.0.0.1", 22)
            with pytest.raises(asyncssh.ChannelListenError):
                await conn.forward_remote_port("127.0.0.1", 0, "127.0.0.1", 22)
            result = await conn.run('echo "agent=[$SSH_AUTH_SOCK]"', check=True)
            return str(result.stdout), "ok"

    stdout, _ = asyncio.run(attempt())
    assert stdout == "agent=[]\n"
    direct_agent = subprocess.run(
        gateway.ssh("alice:t1", 'echo "[$SSH_AUTH_SOCK]"', options=["-A"]),
        capture_output=True,
        timeout=30,
        check=False,
    )
    assert direct_agent.stdout == b"[]\n"


def test_authorized_keys_options_restrict_where_a_key_may_log_in_from(
    tmp_path: Path, broker: Broker, sshd: SshdTarget
) -> None:
    """``from=`` in an operator's key line (OpenSSH's authorized_keys options) is
    honoured: the same key logs in from loopback where allowed, not where not."""
    gateway = GatewayProcess(tmp_path / "gw", broker.bootstrap_servers, sshd)
    pub = gateway.operator_key.with_suffix(".pub").read_text().strip()
    gateway.config_tail = "".join(
        f"""
[[operators]]
name = "{name}"
keys = [{toml_value(f'from="{where}" {pub}')}]
targets = ["t1"]
"""
        for name, where in (("carol", "192.0.2.0/24"), ("dave", "127.0.0.1,::1"))
    )
    gateway.start()
    try:
        elsewhere = subprocess.run(
            gateway.ssh("carol:t1", "echo in"), capture_output=True, timeout=30, check=False
        )
        here = subprocess.run(
            gateway.ssh("dave:t1", "echo in"), capture_output=True, timeout=30, check=False
        )
    finally:
        gateway.stop()
    assert (elsewhere.returncode, elsewhere.stdout) == (255, b""), elsewhere.stderr
    assert b"Permission denied (publickey" in elsewhere.stderr
    assert (here.returncode, here.stdout) == (0, b"in\n"), here.stderr


def test_x11_forwarding_is_refused(gateway: GatewayProcess) -> None:
    """X11 would let the target draw on (and read keys from) the operator's display,
    outside any recording: the gateway refuses the request, the session goes on."""
    x11 = subprocess.run(
        gateway.ssh("alice:t1", 'echo "display=[$DISPLAY]"', options=["-X", "-v"]),
        capture_output=True,
        timeout=30,
        check=False,
        env={**os.environ, "DISPLAY": "127.0.0.1:99"},  # a display the client believes in
    )
    assert x11.returncode == 0, x11.stderr
    assert x11.stdout == b"display=[]\n"
    assert b"Requesting X11 forwarding" in x11.stderr, "the client did ask"
    assert b"X11 forwarding request failed" in x11.stderr, x11.stderr[-2000:]


class _Pong(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        while data := self.request.recv(4096):
            self.request.sendall(b"pong:" + data)


@pytest.fixture
def pong_port() -> Iterator[int]:
    """A TCP service on loopback answering each read with ``pong:`` and the bytes."""
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Pong)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def _events(chunks: list[tuple[int, int, Chunk]]) -> list[object]:
    return [event for _, _, chunk in chunks for event in chunk.events]


def test_forwarding_where_the_target_allows_it_is_relayed_and_recorded(
    gateway: GatewayProcess, pong_port: int
) -> None:
    """ssh -L through the gateway: opened from the target, bytes both ways recorded."""
    local = free_port()
    tunnel = subprocess.Popen(
        gateway.ssh(
            "alice:fwd",
            options=[
                "-N",
                "-o",
                "ExitOnForwardFailure=yes",
                "-L",
                f"{local}:127.0.0.1:{pong_port}",
            ],
        ),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        opened: list[socket.socket] = []

        def connected() -> bool:  # the connection that gets through is the one used
            assert tunnel.poll() is None, tunnel.communicate()[1]
            try:
                opened.append(socket.create_connection(("127.0.0.1", local), timeout=10))
            except ConnectionRefusedError:
                return False
            return True

        wait_for(connected, timeout=30, what="the tunnel to open")
        with opened[0] as conn:
            conn.sendall(b"ping-1")
            assert conn.recv(100) == b"pong:ping-1"
            conn.sendall(b"ping-2")
            assert conn.recv(100) == b"pong:ping-2"
    finally:
        tunnel.terminate()
        tunnel.wait(30)
    [chunks] = published(gateway.servers, gateway.topic).values()
    events = _events(chunks)
    assert [e for e in events if isinstance(e, Exec)] == [
        Exec(t=events[1].t, mode="direct-tcpip", command=f"127.0.0.1:{pong_port}".encode())  # type: ignore[attr-defined]
    ]
    assert b"".join(e.data for e in events if isinstance(e, Input)) == b"ping-1ping-2"
    assert b"".join(e.data for e in events if isinstance(e, Output)) == b"pong:ping-1pong:ping-2"
    end = events[-1]
    assert isinstance(end, End)
    assert end.reason == "client closed the connection"
    assert chunks[0][2].version == 4  # direct-tcpip came with format 2; every chunk signed: 4


class _Banner(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        self.request.sendall(b"hello from the destination\n")  # and closes at once


def test_a_destination_that_talks_first_and_hangs_up_is_relayed_whole(
    gateway: GatewayProcess,
) -> None:
    """Its bytes and its EOF may come before the operator's channel is open."""
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Banner)
    threading.Thread(target=server.serve_forever, daemon=True).start()

    async def fetch() -> list[bytes]:
        got = []
        async with gateway.connect("alice:fwd") as conn:
            for _ in range(5):
                reader, writer = await conn.open_connection("127.0.0.1", server.server_address[1])
                got.append(await asyncio.wait_for(reader.read(), 10))
                writer.close()
        return got

    try:
        assert asyncio.run(fetch()) == [b"hello from the destination\n"] * 5
    finally:
        server.shutdown()
        server.server_close()
    sessions = published(gateway.servers, gateway.topic, complete=5)
    for chunks in sessions.values():
        events = _events(chunks)
        assert b"".join(e.data for e in events if isinstance(e, Output)) == (
            b"hello from the destination\n"
        )


def test_forwarding_refusals_say_why_and_are_recorded(
    gateway: GatewayProcess, pong_port: int
) -> None:
    closed = free_port()

    async def attempts() -> list[str]:
        reasons = []
        for login, port in (("alice:t1", pong_port), ("alice:fwd", closed)):
            async with gateway.connect(login) as conn:
                with pytest.raises(asyncssh.ChannelOpenError) as refused:
                    await conn.open_connection("127.0.0.1", port)
                reasons.append(refused.value.reason)
        return reasons

    assert asyncio.run(attempts()) == [
        "port forwarding is not allowed to target 't1'",
        f"sshtrail: cannot reach 127.0.0.1:{closed}: Connection refused",
    ]
    sessions = published(gateway.servers, gateway.topic, complete=2)
    ends = sorted(_events(chunks)[-1].reason for chunks in sessions.values())  # type: ignore[attr-defined]
    assert ends == [
        f"forwarding to 127.0.0.1:{closed} failed: Connection refused",
        "refused: port forwarding not allowed",
    ]


def test_operators_are_offered_aes_and_a_bad_cipher_name_stops_the_start(
    gateway: GatewayProcess, tmp_path: Path, broker: Broker, sshd: SshdTarget
) -> None:
    only_chacha = ["-c", "chacha20-poly1305@openssh.com"]
    chacha = subprocess.run(
        gateway.ssh("alice:t1", "true", options=only_chacha),
        capture_output=True,
        timeout=30,
        check=False,
    )
    assert chacha.returncode == 255  # "no matching cipher found" (quiet at LogLevel=ERROR)
    ctr = subprocess.run(
        gateway.ssh("alice:t1", "echo ctr", options=["-c", "aes256-ctr"]),
        capture_output=True,
        timeout=30,
        check=False,
    )
    assert (ctr.returncode, ctr.stdout) == (0, b"ctr\n")
    bad = GatewayProcess(
        tmp_path / "bad", broker.bootstrap_servers, sshd, extra='ciphers = ["rot13"]'
    )
    with pytest.raises(AssertionError, match=r"gateway\.ciphers: rot13 is not a valid encryption"):
        bad.start()


def test_idle_sessions_are_closed_and_recorded_so(gateway: GatewayProcess) -> None:
    result = subprocess.run(
        gateway.ssh("alice:t1", "sleep 20"), capture_output=True, timeout=30, check=False
    )
    assert b"idle for more than 2 s" in result.stderr
    [entries] = published(gateway.servers, gateway.topic).values()
    end = entries[-1][2].events[-1]
    assert isinstance(end, End)
    assert end.reason == "idle for more than 2 s"


def test_sigterm_lets_running_sessions_finish_and_publishes_them(
    tmp_path: Path, broker: Broker, sshd: SshdTarget
) -> None:
    gateway = GatewayProcess(tmp_path / "gw", broker.bootstrap_servers, sshd)
    gateway.start()
    session = subprocess.Popen(
        gateway.ssh("alice:t1", "sleep 1.5; echo finished"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    wait_for(
        lambda: any("session" in line and "started (exec)" in line for line in gateway.output),
        timeout=30,
        what="the session running",
    )
    log = gateway.stop()  # SIGTERM while the session runs
    out, _ = session.communicate(timeout=30)
    assert out == b"finished\n"
    assert "waiting up to 30 s for 1 sessions" in log
    assert "every chunk is in Kafka" in log
    assert "ended: exit status 0" in log
    [entries] = published(broker.bootstrap_servers, gateway.topic).values()
    assert entries[-1][2].end is not None


def test_user_certificates_signed_by_the_operators_ca_are_accepted(
    tmp_path: Path, broker: Broker, sshd: SshdTarget
) -> None:
    ca = asyncssh.generate_private_key("ssh-ed25519")
    ca_line = ca.export_public_key().decode().strip()
    gateway = GatewayProcess(
        tmp_path / "gw",
        broker.bootstrap_servers,
        sshd,
        operator_extra=f"cert_authorities = [{ca_line!r}]",
    )
    gateway.start()
    user_key = asyncssh.generate_private_key("ssh-ed25519")

    async def login(principal: str) -> str:
        cert = ca.generate_user_certificate(user_key, "alice-laptop", principals=[principal])
        async with gateway.connect(client_keys=[(user_key, cert)]) as conn:
            return str((await conn.run("echo certified", check=True)).stdout)

    try:
        assert asyncio.run(login("alice")) == "certified\n"
        with pytest.raises(asyncssh.PermissionDenied):
            asyncio.run(login("mallory"))
    finally:
        gateway.stop()
