"""Aggregate bulk throughput through the gateway with 1 and 2 workers, against direct.

``--sessions`` OpenSSH clients at once each ``cat`` a random file of ``--mb``
MB: directly from the sshd (the baseline, same run), then through a
recording gateway with ``gateway.workers = 1``, then 2; best of
``--rounds``, interleaved so drift hits all alike. Printed per way: the
aggregate rate, its ratio to direct, and the gateway's CPU per MB (its
supervisor and workers, every thread, until its recording is published),
from which the rate that 8 and 32 cores could carry is predicted: a core
gives ``1000 / (ms per MB)`` MB/s to recording, if nothing else ran there.

    python -m bench.workers [--mb 64] [--sessions 4] [--rounds 2] [--recorder process|thread]

Everything runs on loopback: the embedded broker, a real sshd, the gateway.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import time

from bench.cpu import cpu_of, family
from bench.gateway import idle_rate, quiet_since
from bench.loopback import EMBEDDED_READERS, Loopback, loopback
from tests.support.gateway import GatewayProcess


def parallel(
    argvs: list[list[str]], size: int, watched: list[int], costed: list[int]
) -> tuple[float, float]:
    """Run the clients at once, until they and ``watched`` are done; (aggregate MB/s,
    CPU ms per MB of ``costed``)."""
    idle = idle_rate(watched)
    before = cpu_of(costed)
    started = time.perf_counter()
    clients = [subprocess.Popen(argv, stdout=subprocess.DEVNULL) for argv in argvs]
    for client in clients:
        if client.wait(timeout=900) != 0:
            raise SystemExit(f"a client failed: {client.args!r}")
    # The run ends when the recording does: what the gateway still publishes counts.
    ended = quiet_since(watched, idle) if watched else time.perf_counter()
    moved = size * len(argvs)
    used = (cpu_of(costed) - before) * 1e9 / moved if costed else 0.0
    return moved / (ended - started) / 1e6, used


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=64, help="each client's bulk output, MB")
    parser.add_argument("--sessions", type=int, default=4, help="clients at once")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument(
        "--recorder", choices=["process", "thread"], default="process", help="gateway.recorder"
    )
    args = parser.parse_args()
    if min(args.mb, args.sessions, args.rounds) < 1:
        parser.error("--mb, --sessions and --rounds must be at least 1")
    with loopback("sshtrail-bench-workers-", args.mb * 1_000_000) as bed:
        best = measure(args, bed)
    report(best, args)


def measure(args: argparse.Namespace, bed: Loopback) -> dict[str, tuple[float, float]]:
    """The best rate and CPU of each way over the rounds, its gateways stopped at the end."""
    work, broker, sshd, blob, size = bed.work, bed.broker, bed.sshd, bed.blob, bed.size
    cipher = ["-c", "aes128-gcm@openssh.com"]
    gateways = {
        workers: GatewayProcess(
            work / f"gw-{workers}",
            broker.bootstrap_servers,
            sshd,
            workers=workers,
            extra=f'target_ciphers = ["aes128-gcm@openssh.com"]\nrecorder = "{args.recorder}"',
            config_tail=EMBEDDED_READERS,
        )
        for workers in (1, 2)
    }
    best: dict[str, tuple[float, float]] = {}
    try:
        for gateway in gateways.values():
            gateway.start()
        for _ in range(args.rounds):
            ways: dict[str, tuple[list[str], list[int]]] = {
                "direct": (sshd.ssh_command(f"cat {blob}", options=cipher), [])
            }
            for workers, gateway in gateways.items():
                assert gateway.process is not None
                argv = gateway.ssh("alice:t1", f"cat {blob}", options=cipher)
                ways[f"gateway, {workers} worker{'s' if workers > 1 else ''}"] = (
                    argv,
                    family(gateway.process.pid),
                )
            for name, (argv, costed) in ways.items():
                watched = [*costed, broker.pid] if costed and broker.pid else costed
                rate, used = parallel([argv] * args.sessions, size, watched, costed)
                if rate > best.get(name, (0.0, 0.0))[0]:
                    best[name] = (rate, used)
    finally:
        for gateway in gateways.values():
            if gateway.process is not None and gateway.process.poll() is None:
                gateway.stop()
    return best


def report(best: dict[str, tuple[float, float]], args: argparse.Namespace) -> None:
    print(
        f"{args.sessions} sessions at once, {args.mb} MB each, aes128-gcm, best of "
        f"{args.rounds}, {len(os.sched_getaffinity(0))} cores"
    )
    direct = best["direct"][0]
    for name, (rate, used) in best.items():
        line = f"  {name:22s} {rate:8.1f} MB/s  ({rate / direct:.2f}x direct)"
        if used:
            per_core = 1000 / used
            line += (
                f"  gateway CPU {used:.2f} ms/MB: one core carries {per_core:.0f} "
                f"MB/s; 8 cores {8 * per_core:.0f}, 32 cores {32 * per_core:.0f} MB/s"
            )
        print(line, flush=True)


if __name__ == "__main__":
    main()
