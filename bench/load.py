"""Load: many concurrent interactive sessions on one gateway, typed as people type.

Each session (asyncssh, PTY, ``bash --norc --noprofile`` on the target) types
a command key by key at 8 keys/s, waits for its output, thinks 4-12 s, and
types the next, for the whole run; a store and an index member read the topic
meanwhile. Printed: sessions dropped, keystroke echo p50/p99 through the
gateway against 5 direct sessions to the same sshd in the same run (the
ratio and the difference), output-to-searchable delay p50/p99 (the time from
a client seeing an output line to the line being in the search index), and
the gateway's memory, and the gateway's event loop: its longest stalls, how
many beyond 5 and 50 ms, and its longest garbage collections
(``producer/loopwatch.py``, read from its ``/metrics``), beside the same watch
on an empty event loop in a process of its own over the same time: the
baseline, what the machine alone does to a loop. ``--workers`` and
``--gc-thresholds`` and ``--recorder`` set ``gateway.workers``,
``gateway.gc_thresholds`` and ``gateway.recorder``.

    python -m bench.load [--sessions 500] [--seconds 120] [--members-after]
        [--workers 1] [--gc-thresholds 7000,20,20] [--recorder process|thread]

Everything runs on loopback: the embedded broker, a real sshd, the gateway,
the consumers, and this client, all on the same machine.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import urllib.request

from prometheus_client.parser import text_string_to_metric_families

from bench.loopback import EMBEDDED_IDLE_CHECK_MS
from bench.scratch import scratch
from sshtrail.broker import EmbeddedBroker, free_port
from tests.support import load
from tests.support.sshd import SshdTarget, find_sshd


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=500)
    parser.add_argument("--seconds", type=float, default=120)
    parser.add_argument(
        "--target-ciphers", default="", help="gateway.target_ciphers, comma-separated"
    )
    parser.add_argument("--ciphers", default="", help="gateway.ciphers, comma-separated")
    parser.add_argument("--workers", type=int, default=1, help="gateway.workers")
    parser.add_argument(
        "--recorder", choices=["process", "thread"], default="process", help="gateway.recorder"
    )
    parser.add_argument("--gc-thresholds", default="", help="gateway.gc_thresholds, three integers")
    parser.add_argument(
        "--members-after",
        action="store_true",
        help="start the store and index members when the load ends: the gateway, the "
        "target and the clients have the machine without them (as where the consumers "
        "run on other hosts); nothing then says how soon lines were searchable",
    )
    args = parser.parse_args()
    thresholds = [int(n) for n in args.gc_thresholds.split(",")] if args.gc_thresholds else []
    if thresholds and (len(thresholds) != 3 or min(thresholds) < 1):
        parser.error("--gc-thresholds takes three positive integers")
    if args.workers < 1:
        parser.error("--workers must be at least 1")
    sshd_binary = find_sshd()
    if sshd_binary is None:
        sys.exit("bench needs OpenSSH's sshd (apt-get install openssh-server)")
    # Every session is two sockets in the gateway and one here: raise the limit
    # for this process and the children it starts.
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    work = scratch("sshtrail-bench-load-")
    with (work / "broker.log").open("ab") as log:
        broker = EmbeddedBroker("127.0.0.1", free_port(), work / "broker", log)
        broker.start()
    sshd = SshdTarget(sshd_binary, work / "sshd")
    sshd.start()
    plan = load.Plan(sessions=args.sessions, seconds=args.seconds)
    try:
        metrics_port = free_port()
        extra = f"metrics_port = {metrics_port}\nrecorder = {json.dumps(args.recorder)}\n"
        extra += f"gc_thresholds = {json.dumps(thresholds)}\n" if thresholds else ""
        for key, value in (("target_ciphers", args.target_ciphers), ("ciphers", args.ciphers)):
            names = [name for name in value.split(",") if name]
            extra += f"{key} = {json.dumps(names)}\n" if names else ""
        with load.stack(
            work,
            broker.bootstrap_servers,
            sshd,
            args.sessions,
            extra,
            members_during_load=not args.members_after,
            workers=args.workers,
            idle_check_ms=EMBEDDED_IDLE_CHECK_MS,
        ) as stack:
            baseline = subprocess.Popen(
                [sys.executable, "-m", "producer.loopwatch", str(args.seconds)],
                stdout=subprocess.PIPE,
                text=True,
            )
            result = stack.run(plan)
            stalls = _loop_figures(metrics_port)
            base_line, _ = baseline.communicate(timeout=args.seconds + 120)
    finally:
        sshd.stop()
        broker.stop()
    _report(args, plan, result)
    _report_loop(args.workers, stalls, base_line)


def _report(args: argparse.Namespace, plan: load.Plan, result: load.LoadResult) -> None:
    figures = load.summary(plan, result)
    lines = figures["output_lines"]
    print(
        f"{args.sessions} sessions for {args.seconds:.0f} s, "
        f"{figures['keystrokes']:.0f} keystrokes, {lines:.0f} output lines"
    )
    print(f"  dropped sessions: {figures['dropped']:.0f}")
    for problem in result.dropped[:10]:
        print(f"    {problem}")
    for i, session in enumerate(result.direct):
        if session.error:
            print(f"    direct session {i}: {session.error}")
    print(
        f"  keystroke echo, gateway: p50 {figures['echo_p50_ms']:.2f} ms, "
        f"p99 {figures['echo_p99_ms']:.2f} ms"
    )
    direct_p50, direct_p99 = figures["direct_echo_p50_ms"], figures["direct_echo_p99_ms"]
    print(
        f"  keystroke echo, direct (5 sessions, same run): p50 {direct_p50:.2f} ms, "
        f"p99 {direct_p99:.2f} ms"
    )
    print(
        f"  p99 overhead {figures['echo_p99_overhead_ms']:.2f} ms, ratio "
        f"{figures['echo_p99_ms'] / figures['direct_echo_p99_ms']:.2f}x"
    )
    timing = (
        "n/a (members started after the load)"
        if result.indexed_after
        else f"p50 {figures['searchable_p50_s']:.2f} s, p99 {figures['searchable_p99_s']:.2f} s "
        "(goal p99 < 2 s)"
    )
    print(f"  output -> searchable: {timing}; {len(result.unsearchable())} lines never searchable")
    print(
        f"  gateway RSS {figures['gateway_rss_before_mib']:.0f} -> "
        f"{figures['gateway_rss_peak_mib']:.0f} MiB "
        f"({figures['gateway_kib_per_session']:.0f} KiB per session)"
    )


def _report_loop(workers: int, stalls: dict[str, float], base_line: str) -> None:
    longest, base_longest = stalls["longest"], _longest_in(base_line)
    print(
        f"  event loop, gateway ({workers} workers, longest of any): longest stall "
        f"{longest * 1000:.1f} ms, > 5 ms: {stalls['over_5ms']:.0f}, > 50 ms: "
        f"{stalls['over_50ms']:.0f}; longest gc gen 0/1/2: {stalls['gc0'] * 1000:.1f} / "
        f"{stalls['gc1'] * 1000:.1f} / {stalls['gc2'] * 1000:.1f} ms"
    )
    print(f"  event loop, baseline (an empty loop, same run): {base_line.strip()}")
    ratio = longest / base_longest if base_longest else float("inf")
    print(f"  longest stall ratio to the baseline: {ratio:.2f}x")


def _loop_figures(port: int) -> dict[str, float]:
    """The gateway's loop stalls and collections from its ``/metrics``."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as page:
        text = page.read().decode()
    found: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "sshtrail_gateway_loop_stall_longest_seconds":
                found["longest"] = sample.value
            elif sample.name == "sshtrail_gateway_loop_stalls_total":
                found[f"over_{float(sample.labels['over']) * 1000:.0f}ms"] = sample.value
            elif sample.name == "sshtrail_gateway_gc_pause_longest_seconds":
                found[f"gc{sample.labels['generation']}"] = sample.value
    return found


def _longest_in(line: str) -> float:
    """The longest stall (seconds) in ``producer.loopwatch``'s summary line."""
    words = line.split("longest stalls ", 1)[1].split(" ms", 1)[0]
    return float(words.split(",")[0]) / 1000


if __name__ == "__main__":
    main()
