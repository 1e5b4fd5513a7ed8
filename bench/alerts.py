"""The alert group: commands per second through all Sigma rules, and Enter -> alert latency.

Throughput (one core): sessions of typed commands, one command per chunk (prompt, keys,
echo, Enter), fed to :class:`~consumer.alertsession.AlertSession` -- the command
reader, the event mapping and the rules, as the group and ``alerts hunt`` run them,
without the database. Measured in the same run over the same chunks: the reader alone
(no rules), the baseline (the reader and the event mapping, with one rule that never
matches so every command is mapped), and every active rule of the SigmaHQ corpus.
Target from issue 30: >= 1,000 commands/s with all rules.

Latency (``--enters N``, 0: skip): ``sshtrail up --demo`` with ``alerts.rules`` set
(embedded broker, gateway, store, index and alert members, all on 127.0.0.1); a shell
through the real gateway as the demo operator; N commands a rule fires on, one every
``--every`` s, each timed from its Enter leaving the client to its alert read from the
alerts topic by a consumer of this process.

    python -m bench.alerts [--sessions 40] [--commands 50] [--repeat 3] [--enters 100]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import random
import shutil
import signal
import statistics
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from confluent_kafka import Consumer
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from bench.live import demo_terminal, start_stack
from bench.scratch import scratch
from bench.sigma_rules import CORPUS, EVERYDAY, SUSPICIOUS, best_rate
from consumer.alertsession import AlertSession
from sshtrail import events as ev
from sshtrail.broker import free_port
from sshtrail.chain import ChainWriter
from sshtrail.ids import uuid7
from sshtrail.sigmarules import Rule, RuleSet, load_rules
from sshtrail.wire import Chunk, decode_chunk

PROMPT = b"deploy@web-1:~$ "
#: What the latency run types: the mkfifo rule fires on it; the folder does not exist, so
#: it changes nothing on this machine.
FIRES = "mkfifo /nonexistent-sshtrail-bench/p{n}"
#: The longest the latency run waits for the last alerts, and runs at all.
SETTLE_S = 30.0
LATENCY_BUDGET_S = 600.0


def session(commands: list[str], signer: Ed25519PrivateKey) -> list[Chunk]:
    """A shell session as the gateway records it: start, then one chunk per command."""
    session_id = uuid7()
    writer = ChainWriter(session_id, signer)
    start = ev.Start(
        0, "alice", "127.0.0.1:50000", "web-1", "127.0.0.1", 22, "deploy", "gw", "xterm",
        200, 50, time.time_ns(),
    )  # fmt: skip
    encoded = [writer.encode([start, ev.Exec(0, "shell", b"")])]
    t = 1_000
    for command in commands:
        line = command.encode()
        encoded.append(
            writer.encode(
                [
                    ev.Output(t, PROMPT),
                    ev.Input(t + 1, line),
                    ev.Output(t + 2, line),
                    ev.Input(t + 3, b"\r"),
                    ev.Output(t + 4, b"\r\n"),
                ]
            )
        )
        t += 1_000_000
    return [decode_chunk(message) for message in encoded]


def throughput(args: argparse.Namespace) -> None:
    rng = random.Random(30)
    signer = Ed25519PrivateKey.generate()
    sessions = [
        session(
            [
                rng.choice(SUSPICIOUS if rng.random() < 0.1 else EVERYDAY)
                for _ in range(args.commands)
            ],
            signer,
        )
        for _ in range(args.sessions)
    ]
    rules = load_rules(args.rules)
    never = Rule("never", "never", "", (), "bench", "-", lambda event, low: False)
    sets = {
        "reader alone, no rules": RuleSet((), ()),
        "baseline: reader + event mapping": RuleSet((never,), ()),
        f"all {len(rules.rules)} active rules": rules,
    }
    commands: int = args.sessions * args.commands
    raised = {name: 0 for name in sets}

    def run(name: str, ruleset: RuleSet) -> Callable[[], int]:
        def work() -> int:
            count = 0
            for chunks in sessions:
                reading = AlertSession(chunks[0].session_id)
                for chunk in chunks:
                    count += len(reading.apply(chunk, ruleset))
            raised[name] = count
            return commands

        return work

    rates = {name: best_rate(run(name, ruleset), args.repeat) for name, ruleset in sets.items()}
    print(
        f"rules: {len(rules.rules)} active of {len(rules.statuses)} files; {args.sessions} "
        f"sessions x {args.commands} commands, best of {args.repeat}"
    )
    for name, rate in rates.items():
        print(f"{name:<36} {rate:10,.0f} commands/s  ({raised[name]} alerts)")
    full, base = (
        rates[f"all {len(rules.rules)} active rules"],
        rates["baseline: reader + event mapping"],
    )
    print(f"ratio all rules / baseline:          {full / base:10.2f}")
    print(f"target >= 1,000 commands/s:          {'met' if full >= 1000 else 'MISSED'}")


def latency(args: argparse.Namespace) -> None:
    home = scratch("sshtrail-bench-alerts-")
    folder = home / "rules"
    folder.mkdir()
    for path in sorted(args.rules.glob("*.yml")):
        shutil.copy(path, folder)
    port = free_port()
    up, found = start_stack(
        home, {"SSHTRAIL_BROKER__PORT": str(port), "SSHTRAIL_ALERTS__RULES": str(folder)}
    )
    seen: dict[str, float] = {}
    stop = threading.Event()
    listener = threading.Thread(target=listen, args=(port, seen, stop), daemon=True)
    listener.start()
    sent: dict[str, float] = {}
    try:
        asyncio.run(asyncio.wait_for(operate(found, args, sent), LATENCY_BUDGET_S))
        deadline = time.monotonic() + SETTLE_S
        while time.monotonic() < deadline and not set(sent) <= set(seen):
            time.sleep(0.1)
    finally:
        stop.set()
        listener.join(10)
        up.send_signal(signal.SIGINT)
        up.wait(timeout=60)
    taken = sorted((seen[c] - sent[c]) * 1000 for c in sent if c in seen)
    print(f"{len(sent)} commands typed through the gateway, {len(taken)} alerts read back")
    if len(taken) < 2:
        sys.exit("nothing to measure")
    p99 = taken[math.ceil(0.99 * len(taken)) - 1]  # nearest rank: a time that was seen
    print(
        f"Enter -> alert on the alerts topic: p50 {statistics.median(taken):7.1f} ms  "
        f"p99 {p99:7.1f} ms  max {taken[-1]:7.1f} ms ({len(sent) - len(taken)} never arrived)"
    )


def listen(port: int, seen: dict[str, float], stop: threading.Event) -> None:
    """Each alert's command and when it was read from the alerts topic."""
    consumer = Consumer(
        {
            "bootstrap.servers": f"127.0.0.1:{port}",
            "group.id": f"bench-{uuid7().hex}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "topic.metadata.refresh.interval.ms": 500,
        }
    )
    consumer.subscribe(["sshtrail.alerts"])
    try:
        while not stop.is_set():
            message = consumer.poll(0.05)
            value = message.value() if message is not None and not message.error() else None
            if value is not None:
                seen.setdefault(json.loads(value)["command"], time.perf_counter())
    finally:
        consumer.close()


async def operate(found: dict[str, str], args: argparse.Namespace, sent: dict[str, float]) -> None:
    async with demo_terminal(found, (200, 40)) as process:
        await asyncio.sleep(2.0)  # the shell's prompt
        for n in range(args.enters):
            command = FIRES.format(n=n)
            process.stdin.write(command)
            await asyncio.sleep(0.05)  # the echo, as a person sees the line before Enter
            sent[command] = time.perf_counter()
            process.stdin.write("\r")
            await asyncio.sleep(args.every)
        process.stdin.write("exit\r")
        await asyncio.sleep(0.5)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=40)
    parser.add_argument("--commands", type=int, default=50, help="commands per session")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--enters", type=int, default=100, help="latency run (0: skip)")
    parser.add_argument("--every", type=float, default=0.2, help="seconds between Enters")
    parser.add_argument("--rules", type=Path, default=CORPUS)
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        cores = os.sched_getaffinity(0)
        os.sched_setaffinity(0, {min(cores)})  # one core, as the target says
        throughput(args)
        os.sched_setaffinity(0, cores)  # the stack's processes inherit it otherwise
    else:
        throughput(args)
    if args.enters:
        latency(args)


if __name__ == "__main__":
    main()
