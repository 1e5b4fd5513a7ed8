"""Malformed and hostile SSH clients: the gateway stays up, bounded, and serves others.

Every test here ends by running a normal ``ssh`` exec through the same gateway
(:func:`still_serves`): whatever the hostile client did, others are served.
"""

from __future__ import annotations

import asyncio
import socket
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import asyncssh
import pytest

from tests.support.gateway import GatewayProcess, published, rss_kib
from tests.support.kafka import Broker
from tests.support.proxy import StallingProxy
from tests.support.sshd import SshdTarget
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration


#: The attacker's address: another loopback address, so the limits per address
#: can be seen to spare the operators connecting from 127.0.0.1.
ATTACKER = "127.0.0.2"

LIMITS = """
max_pending_logins_per_address = 5
auth_attempts_per_minute = 5
max_sessions_per_operator = 20
"""


@pytest.fixture
def gateway(tmp_path: Path, broker: Broker, sshd: SshdTarget) -> Iterator[GatewayProcess]:
    process = GatewayProcess(tmp_path / "gw", broker.bootstrap_servers, sshd, extra=LIMITS)
    process.start()
    yield process
    if process.process is not None and process.process.poll() is None:
        process.stop()


def still_serves(gateway: GatewayProcess) -> None:
    """A well-behaved operator gets through, promptly."""
    assert gateway.process is not None
    assert gateway.process.poll() is None, "the gateway died"
    result = subprocess.run(
        gateway.ssh("alice:t1", "echo served-$((20+22))"),
        capture_output=True,
        timeout=30,
        check=False,
    )
    assert (result.returncode, result.stdout) == (0, b"served-42\n"), result.stderr


def rss_mib(pid: int) -> float:
    kib = rss_kib(pid)
    assert kib is not None, "no VmRSS"
    return kib / 1024


class _Counting(asyncssh.SSHClientSession[bytes]):
    def __init__(self) -> None:
        self.received = 0

    def data_received(self, data: bytes, datatype: asyncssh.DataType) -> None:
        self.received += len(data)


@pytest.mark.parametrize("window", [2 << 20, 1 << 30], ids=["usual window", "1 GiB window"])
def test_a_huge_window_and_a_stalled_client_do_not_grow_the_gateway(
    gateway: GatewayProcess, window: int
) -> None:
    """A slow client pauses the target: with a usual window by the SSH window running
    out; with a 1 GiB window granted and then the socket not read, by the gateway
    watching its socket. Either way it does not buffer what the client does not take."""
    assert gateway.process is not None
    pid, total = gateway.process.pid, 300_000_000

    async def download(proxy: StallingProxy) -> tuple[int, int | None, float, float]:
        async with asyncssh.connect(
            "127.0.0.1",
            proxy.port,
            username="alice:t1",
            known_hosts=None,
            client_keys=[str(gateway.operator_key)],
        ) as conn:
            chan, session = await conn.create_session(
                _Counting, f"head -c {total} /dev/zero", encoding=None, window=window
            )
            assert isinstance(session, _Counting)
            while session.received < 5_000_000:
                await asyncio.sleep(0.01)
            before = rss_mib(pid)
            proxy.stall()
            peak = before
            for _ in range(30):  # 6 s of a client that takes nothing
                await asyncio.sleep(0.2)
                peak = max(peak, rss_mib(pid))
            proxy.resume()
            await chan.wait_closed()
            return session.received, chan.get_exit_status(), before, peak

    with StallingProxy(gateway.port) as proxy:
        received, status, before, peak = asyncio.run(download(proxy))
    assert (received, status) == (total, 0)
    assert peak - before < 64, f"the gateway grew from {before:.0f} to {peak:.0f} MiB"
    still_serves(gateway)


def test_garbage_and_wrong_protocol_versions_are_dropped(gateway: GatewayProcess) -> None:
    for greeting in (
        b"SSH-1.5-ancient\r\n",
        b"GET / HTTP/1.1\r\n\r\n",
        bytes(range(256)) * 64,
        b"SSH-2.0-ok\r\n" + b"\x00" * 4096,
    ):
        with socket.create_connection(("127.0.0.1", gateway.port), timeout=10) as sock:
            assert sock.recv(256).startswith(b"SSH-2.0-sshtrail")
            sock.sendall(greeting)
            sock.settimeout(10)
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:  # the gateway hangs up; nothing hangs
                try:
                    if not sock.recv(65536):
                        break
                except ConnectionResetError:
                    break
            else:
                pytest.fail(f"the gateway kept a connection that sent {greeting[:20]!r}")
    still_serves(gateway)


def _closed_within(sock: socket.socket, seconds: float) -> bool:
    sock.settimeout(seconds)
    try:
        while sock.recv(65536):
            pass
    except TimeoutError:
        return False
    except ConnectionResetError:
        pass
    return True


def test_silent_connections_from_one_address_cannot_take_every_login_slot(
    gateway: GatewayProcess,
) -> None:
    """Half-open logins (a banner read, nothing sent) count against their address only."""
    silent = [
        socket.create_connection(
            ("127.0.0.1", gateway.port), timeout=10, source_address=(ATTACKER, 0)
        )
        for _ in range(5)
    ]
    try:
        for sock in silent:
            assert sock.recv(256).startswith(b"SSH-2.0-sshtrail")
        one_more = socket.create_connection(
            ("127.0.0.1", gateway.port), timeout=10, source_address=(ATTACKER, 0)
        )
        with one_more:
            assert _closed_within(one_more, 10), "a sixth silent login from one address was kept"
        still_serves(gateway)  # from 127.0.0.1, while the five are held
        assert not any(_closed_within(sock, 0.2) for sock in silent)
    finally:
        for sock in silent:
            sock.close()
    # The address may log in again once the gateway has noticed the five are gone.
    wait_for(lambda: _logs_in(gateway, ATTACKER), timeout=30, what="the address let in again")
    output = "".join(gateway.output)
    assert output.count("waiting to log in (further refusals") == 1


def _logs_in(gateway: GatewayProcess, address: str) -> bool:
    try:
        asyncio.run(_login(gateway, address))
    except (asyncssh.Error, OSError):
        return False
    return True


async def _login(gateway: GatewayProcess, address: str, key: Path | None = None) -> None:
    async with gateway.connect(
        client_keys=[str(key or gateway.operator_key)], local_addr=(address, 0)
    ) as conn:
        result = await conn.run("true", check=False)
        assert result.exit_status == 0


def test_an_auth_flood_is_cut_off_and_recorded_without_flooding_the_records(
    gateway: GatewayProcess, broker: Broker
) -> None:
    outcomes: Counter[str] = Counter()
    for _ in range(40):
        try:
            asyncio.run(_login(gateway, ATTACKER, key=gateway.stranger_key))
        except asyncssh.PermissionDenied:
            outcomes["denied"] += 1
        except (asyncssh.DisconnectError, ConnectionError):
            outcomes["cut off"] += 1  # before the key exchange: no room for a message
    assert outcomes == {"denied": 5, "cut off": 35}
    ssh = subprocess.run(
        gateway.ssh("alice:t1", "true", options=["-b", ATTACKER]),
        capture_output=True,
        timeout=30,
        check=False,
    )
    assert ssh.returncode == 255  # even with the right key, for the rest of the minute
    still_serves(gateway)  # another address is not affected
    sessions = published(broker.bootstrap_servers, gateway.topic, complete=6)
    reasons = Counter(
        chunks[-1][2].end.reason for chunks in sessions.values() if chunks[-1][2].end is not None
    )
    assert reasons == {
        "refused: authentication failed (1 failed attempt: publickey 1)": 5,
        "exit status 0": 1,
    }


def test_thousands_of_channels_on_one_connection_stop_at_the_operators_limit(
    gateway: GatewayProcess, broker: Broker
) -> None:
    async def flood() -> Counter[str]:
        outcomes: Counter[str] = Counter()
        async with gateway.connect() as conn:
            opened = []
            for _ in range(2000):
                try:
                    chan, _ = await conn.create_session(asyncssh.SSHClientSession, "sleep 60")
                except asyncssh.ChannelOpenError as exc:
                    outcomes[exc.reason] += 1
                else:
                    opened.append(chan)
                    outcomes["opened"] += 1
            # While one operator is at the limit, the gateway answers others.
            bob = subprocess.run(gateway.ssh("bob"), capture_output=True, timeout=30, check=False)
            # bob gave no target (and has none): the gateway's own answer proves it answered
            # (a gateway that answered nobody would fail here, not pass).
            assert b"no target given. Log in as bob@TARGET" in bob.stderr, bob.stderr
            for chan in opened:
                chan.close()
        return outcomes

    outcomes = asyncio.run(flood())
    assert outcomes == {"opened": 20, "you have 20 sessions open already": 1980}
    still_serves(gateway)
    sessions = published(broker.bootstrap_servers, gateway.topic, complete=22)
    reasons = Counter(
        chunks[-1][2].end.reason for chunks in sessions.values() if chunks[-1][2].end is not None
    )
    assert reasons["refused: max_sessions_per_operator"] == 1  # once per connection
