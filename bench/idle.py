"""CPU of the local stack at rest: ``sshtrail up --demo`` with no session open.

Starts the stack in a scratch state directory on free loopback ports, waits
for it to be ready and to settle (start-up work: migrations, group joins),
then reads every process of the tree from ``/proc`` over a window and prints
each one's share of a core and the total. Goal (issue 17): total <= 5 %.

    python -m bench.idle [--seconds 30] [--settle 15] [--kafka]

``--kafka`` runs the stack against a one-node Apache Kafka started from the
test harness's jars instead of the embedded broker: members do not rest there
(the broker holds their empty fetches), and the broker's JVM is shown apart
from the stack, since a production broker is not the gateway host's cost.

``--sessions N`` opens N interactive sessions through the demo gateway first
(the real ``ssh -tt``, a login shell each, nothing typed) and measures with
them open; ``--keepalive S`` sets ``gateway.keepalive_s`` (0: no keep-alive
notices), for what the keep-alives of idle sessions cost (docs/decisions.md,
"Interrupted sessions").

``--workers N`` sets ``gateway.workers`` (0: one per core), ``--recorder``
``gateway.recorder``; the time ``up --demo`` took to say it is ready is
printed too (issue 34: as fast as with one worker).

The baseline in the same run: ``python -c 'import time; time.sleep(N)'``,
which should read 0 % -- a machine too loaded to measure shows there.
"""

from __future__ import annotations

import argparse
import contextlib
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from bench.cpu import cpu_seconds
from bench.scratch import scratch, start_demo


@dataclass(frozen=True)
class Process:
    pid: int
    name: str


def _children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*/children"):
        try:
            found.extend(int(child) for child in task.read_text().split())
        except OSError:
            continue
    return found


def tree(root: int) -> list[Process]:
    """``root`` and its descendants, each named by its command line."""
    processes: list[Process] = []
    todo = [root]
    while todo:
        pid = todo.pop()
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        words = [w.decode(errors="replace") for w in argv if w]
        if len(words) > 2 and words[1:3] == ["-m", "sshtrail"]:
            words = ["sshtrail", *words[3:]]
        if "--config" in words[:-1]:
            at = words.index("--config")
            del words[at : at + 2]
        shown = [Path(words[0]).name, *(w for w in words[1:2] if not w.startswith("-"))]
        name = " ".join(shown) if words else str(pid)
        processes.append(Process(pid, f"{name} [{pid}]"))
        todo.extend(_children(pid))
    return processes


def shares(processes: list[Process], seconds: float) -> dict[str, float]:
    """Each process's CPU over ``seconds`` of wall time, as a share of one core."""
    before = {p: cpu_seconds(p.pid) for p in processes}
    time.sleep(seconds)
    result = {}
    for p in processes:
        try:
            result[p.name] = (cpu_seconds(p.pid) - before[p]) / seconds
        except OSError:
            result[p.name] = float("nan")
    return result


def rss_mib(pid: int) -> float:
    """A process's resident memory in MiB (0 once it has ended)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0.0
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


@contextlib.contextmanager
def idle_sessions(said: str, count: int) -> Iterator[None]:
    """``count`` terminal sessions through the demo gateway, open and idle until the end.

    Opened one after another and ended by ``exit``: the login shells of the demo
    target may run start-up work that takes a lock (``pyenv rehash`` in root's
    ``.bashrc`` on the test machine), and a shell killed while it holds the lock
    leaves every later login waiting for it."""
    if not count:
        yield
        return
    command = next(line for line in said.splitlines() if line.startswith("ssh -i "))
    *options, destination = shlex.split(command)
    argv = [*options, "-tt", "-o", "BatchMode=yes", destination]
    clients = []
    for _ in range(count):
        clients.append(
            subprocess.Popen(
                argv, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
            )
        )
        time.sleep(0.2)
    time.sleep(5)  # logged in, shells started
    alive = sum(client.poll() is None for client in clients)
    print(f"{alive} of {count} idle sessions open", flush=True)
    try:
        yield
    finally:
        for client in clients:
            with contextlib.suppress(OSError):
                assert client.stdin is not None
                client.stdin.write(b"exit\n")
                client.stdin.close()
        for client in clients:
            try:
                client.wait(10)
            except subprocess.TimeoutExpired:
                client.kill()
                client.wait()


def gateway_environment(args: argparse.Namespace) -> dict[str, str]:
    """The gateway settings the options ask for, as ``SSHTRAIL_*`` variables."""
    chosen = {"KEEPALIVE_S": args.keepalive, "WORKERS": args.workers, "RECORDER": args.recorder}
    return {f"SSHTRAIL_GATEWAY__{k}": str(v) for k, v in chosen.items() if v is not None}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--settle", type=float, default=15.0)
    parser.add_argument("--kafka", action="store_true", help="on Apache Kafka, not embedded")
    parser.add_argument("--sessions", type=int, default=0, help="idle sessions kept open")
    parser.add_argument("--keepalive", type=int, help="gateway.keepalive_s (default: its own)")
    parser.add_argument("--workers", type=int, help="gateway.workers (default: its own)")
    parser.add_argument("--recorder", choices=["process", "thread"], help="gateway.recorder")
    args = parser.parse_args()

    home = scratch("sshtrail-bench-idle-")
    with contextlib.ExitStack() as stack:
        extra: dict[str, str] = {}
        broker: list[Process] = []
        if args.kafka:
            from tests.support.kafka import KafkaCluster  # only this mode needs the harness

            cluster = KafkaCluster(home / "kafka")
            cluster.start()
            stack.callback(cluster.stop)
            extra["SSHTRAIL_KAFKA__BOOTSTRAP_SERVERS"] = cluster.bootstrap_servers
            broker = [Process(pid, f"broker: Apache Kafka JVM [{pid}]") for pid in cluster.pids()]
        extra |= gateway_environment(args)
        started = time.monotonic()
        up, said = start_demo(home, extra)
        ready_s = time.monotonic() - started
        try:
            with idle_sessions(said, args.sessions):  # ended before the stack stops
                time.sleep(args.settle)
                sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(3600)"])
                processes = [
                    *tree(up.pid),
                    *broker,
                    Process(sleeper.pid, "baseline: python sleeping"),
                ]
                measured = shares(processes, args.seconds)
                memory = {p.name: rss_mib(p.pid) for p in processes}
                sleeper.kill()
        finally:
            up.send_signal(signal.SIGINT)
            up.wait(timeout=60)

    print(f"idle stack, CPU over {args.seconds:.0f} s (share of one core) and memory (RSS):")
    total = 0.0
    for name, share in measured.items():
        print(f"  {share * 100:6.2f} %  {memory.get(name, 0.0):6.1f} MiB  {name}")
        if not name.startswith(("baseline", "broker:")):
            total += share
    where = "on Apache Kafka, its broker apart" if args.kafka else "embedded broker included"
    print(f"  {total * 100:6.2f} %  total of the stack, {where} (goal <= 5 %)")
    workers = "default" if args.workers is None else str(args.workers)
    recorder = args.recorder or "default"
    print(f"  up --demo ready in {ready_s:.1f} s, gateway.workers {workers}, recorder {recorder}")
    if args.sessions or args.keepalive is not None:
        keepalive = "default" if args.keepalive is None else f"{args.keepalive} s"
        print(f"  with {args.sessions} idle sessions open, gateway.keepalive_s {keepalive}")


if __name__ == "__main__":
    main()
