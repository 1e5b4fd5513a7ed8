"""An Enter in a terminal shell with 200 command-policy rules, against the same Enter with
no policy, measured in the same run (issue 29: the check adds at most 1 ms at p99).

A command typed key by key through the real gateway to bash on a real sshd, then
Enter; the time from sending Enter to the command's first output. "typed": Enter 100 ms
after the line showed, as a person presses it; "machine": at once, when the gateway
must still wait for the echo to settle (30 ms) before it can read the line. With rules, the
gateway holds each Enter until the line on screen is decided (``producer/linegate.py``);
none of the 200 rules matches, so each is tried. Also the decision alone: 200 rules
over a typical line, without I/O.

    python -m bench.policy [--enters 200]

Everything runs on loopback: the embedded broker, a real sshd, two gateways.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time

from bench.loopback import EMBEDDED_READERS
from bench.scratch import scratch
from sshtrail.broker import EmbeddedBroker, free_port
from sshtrail.commandpolicy import parse_policy
from tests.support.gateway import GatewayProcess, toml_value
from tests.support.sshd import SshdTarget, find_sshd

LINE = "ls -la /var/log | grep -v journal; echo done-$((1+1))"


def rules(count: int) -> str:
    """``count`` rules of words and regular expressions, none matching :data:`LINE`."""
    made = []
    for n in range(count):
        entry = f"re:\\\\bforbidden{n}\\\\b" if n % 4 == 0 else f"forbidden{n} --now"
        made.append(
            f'[[rule]]\nname = "r{n}"\naction = "{"reject" if n % 2 else "warn"}"\n'
            f'match = ["{entry}", "other{n}"]\ntargets = ["t*"]\n'
        )
    return "\n".join(made)


async def enter_times(gateway: GatewayProcess, count: int, pause: float) -> list[float]:
    """Seconds from an Enter to its output, ``count`` times, in one shell; the Enter
    ``pause`` seconds after the last key's echo (a person sees the line, then presses
    Enter; 0: a program typing)."""
    async with gateway.connect() as conn:
        process = await conn.create_process(term_type="xterm", term_size=(200, 24), encoding=None)
        process.stdin.write(b"exec bash --norc --noprofile\rPS1='READY> '\r")
        await process.stdout.readuntil(b"READY> ")
        taken = []
        for _ in range(count):
            for key in LINE:
                process.stdin.write(key.encode())
            await process.stdout.readuntil(LINE[-8:].encode())  # the line's echo
            await asyncio.sleep(pause)
            started = time.perf_counter()
            process.stdin.write(b"\r")
            await process.stdout.readuntil(b"done-2")  # computed: only in the output
            taken.append(time.perf_counter() - started)
            await process.stdout.readuntil(b"READY> ")
        process.stdin.write(b"exit\r")
        process.close()
    return taken


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def decision_cost(count: int) -> tuple[float, float]:
    """p50 and p99 seconds of one decision over 200 rules."""
    policy = parse_policy(rules(200).encode(), "bench")
    taken = []
    for _ in range(count):
        started = time.perf_counter()
        policy.decide("alice", "t1", LINE)
        taken.append(time.perf_counter() - started)
    return statistics.median(taken), percentile(taken, 0.99)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--enters", type=int, default=200, help="Enters measured per gateway")
    args = parser.parse_args()
    sshd_binary = find_sshd()
    if sshd_binary is None:
        sys.exit("bench needs OpenSSH's sshd (apt-get install openssh-server)")
    work = scratch("sshtrail-bench-policy-")
    (work / "policy.toml").write_text(rules(200))
    with (work / "broker.log").open("ab") as log:
        broker = EmbeddedBroker("127.0.0.1", free_port(), work / "broker", log)
        broker.start()
    sshd = SshdTarget(sshd_binary, work / "sshd")
    sshd.start()
    plain = GatewayProcess(
        work / "plain", broker.bootstrap_servers, sshd, config_tail=EMBEDDED_READERS
    )
    ruled = GatewayProcess(
        work / "ruled",
        broker.bootstrap_servers,
        sshd,
        config_tail=f"[policy]\nfile = {toml_value(str(work / 'policy.toml'))}\n"
        + EMBEDDED_READERS,
    )
    plain.start()
    ruled.start()
    try:
        paces = {"typed": 0.1, "machine": 0.0}
        baseline: dict[str, list[float]] = {pace: [] for pace in paces}
        checked: dict[str, list[float]] = {pace: [] for pace in paces}
        for _ in range(2):  # interleaved, so both see the same machine
            for pace, pause in paces.items():
                baseline[pace] += asyncio.run(enter_times(plain, args.enters // 2, pause))
                checked[pace] += asyncio.run(enter_times(ruled, args.enters // 2, pause))
    finally:
        ruled.stop()
        plain.stop()
        sshd.stop()
        broker.stop()
    p50, p99 = decision_cost(5000)
    for pace in paces:
        for name, taken in (("no policy (baseline)", baseline[pace]), ("200 rules", checked[pace])):
            print(
                f"{pace:>7}: Enter to output, {name:<21} p50 "
                f"{statistics.median(taken) * 1000:6.2f} ms  p99 "
                f"{percentile(taken, 0.99) * 1000:6.2f} ms"
            )
        base, ruled_ = baseline[pace], checked[pace]
        print(
            f"{pace:>7}: added by 200 rules: p50 "
            f"{(statistics.median(ruled_) - statistics.median(base)) * 1000:+.2f} ms, p99 "
            f"{(percentile(ruled_, 0.99) - percentile(base, 0.99)) * 1000:+.2f} ms; ratio p50 "
            f"{statistics.median(ruled_) / statistics.median(base):.2f}"
        )
    print(f"one decision over 200 rules: p50 {p50 * 1e6:.0f} us, p99 {p99 * 1e6:.0f} us")


if __name__ == "__main__":
    main()
