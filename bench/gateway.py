"""Gateway benchmarks, each against a baseline measured in the same run.

1. Bulk output throughput: ``cat`` of a random file through the gateway (with
   recording and publishing), through the gateway with recording off, through
   a bare asyncssh relay (``bench/bare_relay.py``: no policy, no recording,
   no threads), and directly from OpenSSH to the same sshd -- per cipher
   (aes128-gcm and the client's default), the same cipher on both legs.
2. Keystroke echo round trip in a PTY session (p50/p99), gateway vs direct.
3. Memory per idle session: gateway RSS growth over N idle PTY sessions, against
   the same gateway with recording off.

    python -m bench.gateway [--mb 256] [--rounds 3] [--echoes 500] [--idle 1000]
                            [--compression lz4|none|zstd]

Everything runs on loopback: the embedded broker, a real sshd, the gateway.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import asyncssh

from bench.bare_relay import BareRelayProcess
from bench.cpu import cpu_of, cpu_seconds, family
from bench.loopback import EMBEDDED_READERS, Loopback, loopback
from tests.support.gateway import GatewayProcess, rss_kib
from tests.support.sshd import SshdTarget

CIPHERS = tuple(os.environ.get("BENCH_CIPHERS", "aes128-gcm@openssh.com,default").split(","))


@dataclass
class Bulk:
    """The best rate of one way of fetching the blob, and CPU per MB on that run."""

    rate: float = 0.0  # MB/s
    gateway_cpu: float = 0.0  # gateway CPU ms per MB, all threads of all its processes
    loop_cpu: float = 0.0  # the gateway's event loop (main thread) alone
    broker_cpu: float = 0.0  # broker CPU ms per MB
    relay_cpu: float = 0.0  # the relay's process alone (all its threads), not its recorder


def timed(argv: Sequence[str], size: int, gateway: int | None, broker: int | None) -> Bulk:
    # The gateway's CPU is its whole family: a recorder process does its recording.
    everyone = family(gateway) if gateway else []

    def now() -> list[float]:
        return [
            cpu_of(everyone),
            cpu_seconds(gateway, main_thread=True),
            cpu_seconds(broker),
            cpu_seconds(gateway),
        ]

    relays = [*everyone, *([broker] if broker is not None else [])] if gateway else []
    idle = idle_rate(relays)
    before = now()
    started = time.perf_counter()
    subprocess.run(argv, stdout=subprocess.DEVNULL, check=True, timeout=600)
    # The run ends when the recording does: the gateway and the broker may still be
    # publishing what the client already has, and that work counts.
    elapsed = quiet_since(relays, idle) - started
    used = [(after - then) * 1e9 / size for after, then in zip(now(), before, strict=True)]
    return Bulk(size / elapsed / 1e6, *used)


def idle_rate(pids: Sequence[int], span: float = 0.5) -> float:
    """The processes' CPU use at rest, in cores (a broker and its readers are never
    quite still)."""
    if not pids:
        return 0.0
    used = sum(cpu_seconds(pid) for pid in pids)
    time.sleep(span)
    return (sum(cpu_seconds(pid) for pid in pids) - used) / span


def quiet_since(pids: Sequence[int], idle: float, step: float = 0.1, still: float = 0.3) -> float:
    """When the processes' CPU went back to its ``idle`` rate (within 5 % of a core, for
    ``still`` s; at most 30 s from now): the moment their share of a run is done."""
    moment = time.perf_counter()
    if not pids:
        return moment
    used, quiet_from = sum(cpu_seconds(pid) for pid in pids), moment
    deadline = moment + 30
    while moment < deadline:
        time.sleep(step)
        moment = time.perf_counter()
        now_used = sum(cpu_seconds(pid) for pid in pids)
        if now_used - used > (idle + 0.05) * step:
            quiet_from = moment
        used = now_used
        if moment - quiet_from >= still:
            break
    return quiet_from


def throughput(
    gw: GatewayProcess,
    plain: GatewayProcess,
    bare: BareRelayProcess,
    sshd: SshdTarget,
    broker: int | None,
    *,
    threaded: GatewayProcess,
    blob: Path,
    size: int,
    rounds: int,
    cipher: str,
) -> dict[str, Bulk]:
    options = [] if cipher == "default" else ["-c", cipher]
    command = f"cat {blob}"
    runs = {
        "direct": (sshd.ssh_command(command, options=options), None),
        "bare asyncssh relay": (bare.ssh(command, options), bare.process.pid),
        "gateway, recording off": (
            plain.ssh("alice:t1", command, options=options),
            plain.process.pid if plain.process else None,
        ),
        "gateway": (
            gw.ssh("alice:t1", command, options=options),
            gw.process.pid if gw.process else None,
        ),
        "gateway, recorder thread": (
            threaded.ssh("alice:t1", command, options=options),
            threaded.process.pid if threaded.process else None,
        ),
    }
    best = {name: Bulk() for name in runs}
    for _ in range(rounds):  # interleaved, so drift hits all alike
        for name, (argv, pid) in runs.items():
            run = timed(argv, size, pid, broker)
            if run.rate > best[name].rate:
                best[name] = run
    return best


async def echo_times(
    host: str, port: int, *, user: str, key: Path, known_hosts: Path, count: int
) -> list[float]:
    """Round trips of one keystroke to its echo in an interactive shell, in µs."""
    async with asyncssh.connect(
        host,
        port,
        username=user,
        client_keys=[str(key)],
        known_hosts=str(known_hosts),
        config=None,
        agent_path=None,
    ) as conn:
        process = await conn.create_process(term_type="xterm", term_size=(80, 24), encoding=None)
        process.stdin.write(b"stty -echoctl; PS1='$ '\n")
        await asyncio.sleep(0.5)
        while process.stdout.at_eof() is False:
            try:
                await asyncio.wait_for(process.stdout.read(65536), 0.2)
            except TimeoutError:
                break
        samples = []
        for i in range(count):
            char = b"abcdefghij"[i % 10 : i % 10 + 1]
            started = time.perf_counter()
            process.stdin.write(char)
            while await process.stdout.readexactly(1) != char:
                pass  # a late piece of the prompt: the echo follows
            samples.append((time.perf_counter() - started) * 1e6)
            if i % 50 == 49:
                process.stdin.write(b"\x15")  # Ctrl-U: clear the line
                await process.stdout.read(4096)
        process.stdin.write(b"\x15exit\n")
        await process.wait()
        return samples


async def idle_sessions(gw: GatewayProcess, count: int) -> float:
    """KiB of gateway RSS per idle PTY session, over ``count`` sessions."""
    assert gw.process is not None
    pid = gw.process.pid
    before = gateway_rss_kib(pid)
    conns: list[asyncssh.SSHClientConnection] = []
    gate = asyncio.Semaphore(16)  # open them 16 at a time

    async def open_one() -> None:
        async with gate:
            conn = await asyncssh.connect(
                "127.0.0.1",
                gw.port,
                username="alice:t1",
                client_keys=[str(gw.operator_key)],
                known_hosts=str(gw.known_hosts),
                config=None,
                agent_path=None,
            )
            await conn.create_process(term_type="xterm", term_size=(80, 24))
            conns.append(conn)

    await asyncio.gather(*(open_one() for _ in range(count)))
    await asyncio.sleep(2)
    after = gateway_rss_kib(pid)
    for conn in conns:
        conn.close()
    await asyncio.gather(*(conn.wait_closed() for conn in conns))
    return (after - before) / count


def gateway_rss_kib(pid: int) -> int:
    kib = rss_kib(pid)
    if kib is None:
        raise RuntimeError("the gateway exited during the benchmark")
    return kib


def percentile(samples: list[float], q: float) -> float:
    return statistics.quantiles(samples, n=100)[int(q) - 1]


def report_bulk(best: dict[str, Bulk], what: str) -> None:
    print(f"bulk output, {what} (CPU in ms per MB on the best run; relay = the process between):")
    for name, run in best.items():
        print(
            f"  {name:<24} {run.rate:8.1f} MB/s   relay CPU {run.gateway_cpu:6.2f}"
            f" (event loop {run.loop_cpu:5.2f})   broker CPU {run.broker_cpu:6.2f}"
        )
    rate = {name: run.rate for name, run in best.items()}
    print(
        f"  ratio gateway/direct:          {rate['gateway'] / rate['direct']:.2f}  (goal >= 0.75)"
    )
    versus_plain = rate["gateway"] / rate["gateway, recording off"]
    print(f"  ratio gateway/recording off:   {versus_plain:.2f}  (goal >= 0.9)")
    on, off = best["gateway"], best["gateway, recording off"]
    bare = best["bare asyncssh relay"]
    bare_rate = rate["bare asyncssh relay"]
    threaded = best["gateway, recorder thread"]
    print(f"  ratio gateway/bare relay:      {rate['gateway'] / bare_rate:.2f}  (goal >= 0.8)")
    print(f"    with the recorder thread:    {threaded.rate / bare_rate:.2f}")
    for name, run in (("recorder process", on), ("recorder thread", threaded)):
        print(
            f"  recording's own CPU, {name + ':':<18} {run.gateway_cpu - off.gateway_cpu:5.2f} ms"
            f" per MB (goal <= 3), {run.loop_cpu - off.loop_cpu:.2f} of it on the event loop"
            f" (goal <= 1), {run.relay_cpu - off.relay_cpu:.2f} in the relay's process"
        )
    # With cores to spare, each process's CPU per MB bounds the rate it can carry.
    print(
        f"  the relay's process alone: {on.relay_cpu:.2f} ms per MB with a recorder process,"
        f" {off.relay_cpu:.2f} recording off, {bare.relay_cpu:.2f} the bare relay: with cores"
        f" to spare it carries {bare.relay_cpu / on.relay_cpu:.2f}x the bare relay's rate"
    )
    print(
        f"  the gateway's relay beyond the bare relay: {off.gateway_cpu - bare.gateway_cpu:.2f}"
        f" ms per MB ({off.loop_cpu - bare.loop_cpu:.2f} on the event loop)"
    )
    # One session's bytes all pass the one event loop: with cores to spare (broker,
    # client and target elsewhere) its CPU per MB bounds the rate.
    print(
        f"  event-loop ratio off/on:       {off.loop_cpu / on.loop_cpu:.2f}"
        "  (the rate ratio where the loop is the only limit)"
    )


def report_echo(sshd: SshdTarget, gw: GatewayProcess, count: int) -> None:
    direct = asyncio.run(
        echo_times(
            "127.0.0.1",
            sshd.port,
            user=sshd.user,
            key=sshd.client_key,
            known_hosts=sshd.known_hosts,
            count=count,
        )
    )
    through = asyncio.run(
        echo_times(
            "127.0.0.1",
            gw.port,
            user="alice:t1",
            key=gw.operator_key,
            known_hosts=gw.known_hosts,
            count=count,
        )
    )
    print(f"keystroke echo round trip, {count} keystrokes (µs):")
    for name, samples in (("direct", direct), ("gateway", through)):
        p50, p99 = percentile(samples, 50), percentile(samples, 99)
        print(f"  {name:<8} p50 {p50:7.0f}   p99 {p99:7.0f}")
    overhead = percentile(through, 99) - percentile(direct, 99)
    print(f"  p99 overhead: {overhead:.0f} µs  (goal < 500)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=256, help="bulk output per run, MB")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--echoes", type=int, default=500)
    parser.add_argument("--idle", type=int, default=1000, help="idle sessions (0: skip)")
    parser.add_argument(
        "--compression", default="lz4", help="kafka.compression of the recording gateway"
    )
    args = parser.parse_args()
    with loopback("sshtrail-bench-", args.mb * 1_000_000) as bed:
        run(args, bed)


def run(args: argparse.Namespace, bed: Loopback) -> None:
    """Every measurement of :func:`main` on ``bed``, its gateways stopped at the end."""
    work, broker, sshd, blob, size = bed.work, bed.broker, bed.sshd, bed.blob, bed.size
    same = ["aes128-gcm@openssh.com"]
    limits = "max_sessions = 5000\nmax_sessions_per_operator = 5000"
    gateways: list[GatewayProcess] = []
    bares: list[BareRelayProcess] = []

    def gateway(*settings: str) -> GatewayProcess:
        gw = GatewayProcess(
            work / f"gw-{len(gateways)}",
            broker.bootstrap_servers,
            sshd,
            extra="\n".join([limits, *settings]),
            kafka_extra=f"compression = {args.compression!r}".replace("'", '"'),
            config_tail=EMBEDDED_READERS,
        )
        gw.start()
        gateways.append(gw)
        return gw

    try:
        # Latency and memory first, on fresh gateways, before bulk data keeps
        # the broker busy.
        report_echo(sshd, gateway(), args.echoes)
        if args.idle:
            unrecorded = asyncio.run(idle_sessions(gateway("record = false"), args.idle))
            per_session = asyncio.run(idle_sessions(gateway(), args.idle))
            print(
                f"memory per idle session at {args.idle} sessions: {per_session:.0f} KiB"
                "  (goal <= 100; with the gateway's own connection to the target); "
                f"recording off (baseline): {unrecorded:.0f} KiB, ratio "
                f"{per_session / unrecorded:.2f}"
            )
        for cipher in CIPHERS:
            ciphers = f"target_ciphers = {same!r}".replace("'", '"') if cipher != "default" else ""
            recording, plain = gateway(ciphers), gateway(ciphers, "record = false")
            threaded = gateway(ciphers, 'recorder = "thread"')
            bare = BareRelayProcess(
                work / f"bare-{cipher}", sshd, "" if cipher == "default" else cipher
            )
            bares.append(bare)
            best = throughput(
                recording,
                plain,
                bare,
                sshd,
                broker.pid,
                threaded=threaded,
                blob=blob,
                size=size,
                rounds=args.rounds,
                cipher=cipher,
            )
            report_bulk(best, f"cipher {cipher}, {args.mb} MB, best of {args.rounds}")
    finally:
        for gw in gateways:
            gw.stop()
        for bare in bares:
            bare.stop()


if __name__ == "__main__":
    main()
