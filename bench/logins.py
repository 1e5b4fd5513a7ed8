"""Logins while others guess passwords: a key login's latency against the same login
with nobody guessing, measured in the same run.

Password checks are scrypt (about 50 ms and 16 MiB each) in a bounded thread
pool, off the gateway's event loop. On the loop (issue 23, #3) a guessing run
held other operators' logins for 17-37 s; off it, a login waits only for the
CPU the checks take.

    python -m bench.logins [--logins 20] [--guessers 8]

Everything runs on loopback: the embedded broker, a real sshd, the gateway.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time

import asyncssh

from bench.loopback import EMBEDDED_READERS
from bench.scratch import scratch
from sshtrail.broker import EmbeddedBroker, free_port
from sshtrail.passwords import hash_password
from tests.support.gateway import GatewayProcess, toml_value
from tests.support.sshd import SshdTarget, find_sshd

PASSWORD = "correct horse battery staple"


async def login_times(gateway: GatewayProcess, count: int) -> list[float]:
    """Seconds from connecting to a finished ``true`` through the gateway, ``count`` times."""
    taken = []
    for _ in range(count):
        started = time.perf_counter()
        async with gateway.connect() as conn:
            await conn.run("true", check=True)
        taken.append(time.perf_counter() - started)
    return taken


async def guess_until(gateway: GatewayProcess, stop: asyncio.Event) -> int:
    """Wrong passwords for ``pat``, connection after connection, until ``stop``; how many."""
    tried = 0

    class Guesser(asyncssh.SSHClient):
        def password_auth_requested(self) -> str:
            nonlocal tried
            tried += 1
            return "wrong"

    while not stop.is_set():
        try:
            conn, _ = await asyncssh.create_connection(
                Guesser,
                "127.0.0.1",
                gateway.port,
                username="pat:t1",
                known_hosts=str(gateway.known_hosts),
                client_keys=None,
                preferred_auth="password",
            )
            conn.close()
        except (asyncssh.PermissionDenied, asyncssh.DisconnectError, ConnectionError):
            pass
    return tried


async def under_guessing(
    gateway: GatewayProcess, logins: int, guessers: int
) -> tuple[list[float], int]:
    stop = asyncio.Event()
    guessing = [asyncio.create_task(guess_until(gateway, stop)) for _ in range(guessers)]
    await asyncio.sleep(1.0)  # the guessing is under way
    try:
        taken = await login_times(gateway, logins)
    finally:
        stop.set()
    return taken, sum(await asyncio.gather(*guessing))


def summary(taken: list[float]) -> str:
    ordered = sorted(taken)
    return f"p50 {statistics.median(ordered) * 1000:7.0f} ms  max {ordered[-1] * 1000:7.0f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--logins", type=int, default=20, help="key logins measured per phase")
    parser.add_argument("--guessers", type=int, default=8, help="connections guessing at once")
    args = parser.parse_args()
    sshd_binary = find_sshd()
    if sshd_binary is None:
        sys.exit("bench needs OpenSSH's sshd (apt-get install openssh-server)")
    work = scratch("sshtrail-bench-logins-")
    with (work / "broker.log").open("ab") as log:
        broker = EmbeddedBroker("127.0.0.1", free_port(), work / "broker", log)
        broker.start()
    sshd = SshdTarget(sshd_binary, work / "sshd")
    sshd.start()
    gateway = GatewayProcess(
        work / "gw",
        broker.bootstrap_servers,
        sshd,
        # Limits high enough that the guessers are never cut off: every guess is checked.
        extra="max_auth_tries = 6\nauth_failures_per_operator = 1000000\n"
        "auth_attempts_per_minute = 1000000\nmax_pending_logins_per_address = 1000",
        config_tail=f"""
[[operators]]
name = "pat"
password_hash = {toml_value(hash_password(PASSWORD))}
targets = ["t1"]
"""
        + EMBEDDED_READERS,
    )
    gateway.start()
    try:
        quiet = asyncio.run(login_times(gateway, args.logins))
        busy, guesses = asyncio.run(under_guessing(gateway, args.logins, args.guessers))
    finally:
        gateway.stop()
        sshd.stop()
        broker.stop()
    print(f"key login, nobody guessing (baseline)     {summary(quiet)}")
    print(f"key login, {args.guessers} connections guessing    {summary(busy)}")
    print(
        f"ratio p50 {statistics.median(busy) / statistics.median(quiet):.2f}, "
        f"max {max(busy) / max(quiet):.2f}; {guesses} passwords checked meanwhile"
    )


if __name__ == "__main__":
    main()
