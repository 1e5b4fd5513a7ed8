"""Load: many concurrent interactive sessions on one gateway, typed as people type.

Each session (asyncssh, PTY, ``bash --norc --noprofile`` on the target) types
a command key by key at 8 keys/s, waits for its output, thinks 4-12 s, and
types the next, for the whole run; a store and an index member read the topic
meanwhile. Printed: sessions dropped, keystroke echo p50/p99 through the
gateway against 5 direct sessions to the same sshd in the same run (the
ratio and the difference), output-to-searchable delay p50/p99 (the time from
a client seeing an output line to the line being in the search index), and
the gateway's memory.

    python -m bench.load [--sessions 500] [--seconds 120] [--members-after]

Everything runs on loopback: the embedded broker, a real sshd, the gateway,
the consumers, and this client, all on the same machine.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys

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
    parser.add_argument(
        "--members-after",
        action="store_true",
        help="start the store and index members when the load ends: the gateway, the "
        "target and the clients have the machine without them (as where the consumers "
        "run on other hosts); nothing then says how soon lines were searchable",
    )
    args = parser.parse_args()
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
        extra = ""
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
        ) as stack:
            result = stack.run(plan)
    finally:
        sshd.stop()
        broker.stop()
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


if __name__ == "__main__":
    main()
