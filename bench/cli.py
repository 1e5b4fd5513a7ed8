"""How long the CLI takes to answer, against ``python -c pass`` in the same run.

Fills a store and a search index the size of a tried-out demo (``--sessions``
sessions, ``--lines`` indexed lines), then runs each command as an auditor
does -- a new process, wall time -- ``--runs`` times, and prints the median,
the 95th percentile and the ratio of the median to the bare interpreter's.
Goals (issue 17): ``--help`` <= 150 ms, ``sessions`` / ``show`` / ``search``
<= 300 ms. Where the time goes: ``python -X importtime -m sshtrail sessions``.

    python -m bench.cli [--sessions 50] [--lines 2000] [--runs 15]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys

from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from sqlalchemy import select

from bench.audit import fill_databases, timed
from bench.scratch import scratch
from sshtrail.models import SessionRecord
from tests.support.recordings import SIGNER

GOALS_MS = {"--help": 150.0, "sessions": 300.0, "show": 300.0, "search": 300.0}


def wall_ms(argv: list[str], env: dict[str, str], runs: int) -> tuple[float, float]:
    """Median and 95th percentile of ``runs`` runs of ``argv`` in a new process, in ms.

    Every run must succeed: a command that fails fast would look fast.
    """

    def run() -> None:
        done = subprocess.run(argv, env=env, capture_output=True, check=False)
        if done.returncode != 0:
            sys.exit(
                f"{' '.join(argv[2:]) or argv[-1]} exited {done.returncode}, so its time means "
                f"nothing: {done.stderr.decode(errors='replace')[-500:]}"
            )

    return timed(run, runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=50)
    parser.add_argument("--lines", type=int, default=2000)
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    workdir = scratch("bench-cli-")
    store_url, search_url = f"sqlite:///{workdir / 'store.db'}", f"sqlite:///{workdir / 's.db'}"
    store, index = fill_databases(store_url, search_url, args.sessions, args.lines)
    with store.connect() as conn:
        some = conn.execute(select(SessionRecord.id).limit(1)).scalar_one()
    store.dispose()
    index.dispose()
    # As on a real stack, the sessions are signed by the gateway these settings name:
    # the stored verdicts stand, and are not recomputed from the chunks on every run.
    key = workdir / "recording_ed25519_key"
    key.with_suffix(".pub").write_bytes(
        SIGNER.public_key().public_bytes(Encoding.OpenSSH, PublicFormat.OpenSSH)
    )
    env = {
        **os.environ,
        "SSHTRAIL_DATABASE__URL": store_url,
        "SSHTRAIL_SEARCH__URL": search_url,
        "SSHTRAIL_GATEWAY__SIGNING_KEY": str(key),
    }
    sshtrail = [sys.executable, "-m", "sshtrail"]
    base, base95 = wall_ms([sys.executable, "-c", "pass"], env, args.runs)
    print(f"{args.sessions} sessions stored, {args.lines} lines indexed; {args.runs} runs each")
    print(f"{'python -c pass':<28} median {base:6.1f} ms  p95 {base95:6.1f} ms  (baseline)")
    for name, argv in (
        ("--help", ["--help"]),
        ("--version", ["--version"]),
        ("sessions", ["sessions"]),
        ("show", ["show", some.hex]),
        ("search", ["search", "rm -rf"]),
    ):
        median, p95 = wall_ms(sshtrail + argv, env, args.runs)
        goal = GOALS_MS.get(name)
        verdict = (
            ""
            if goal is None
            else f"  goal <= {goal:.0f} ms: {'met' if median <= goal else 'NOT met'}"
        )
        print(
            f"{'sshtrail ' + name:<28} median {median:6.1f} ms  p95 {p95:6.1f} ms  "
            f"{median / base:5.1f}x baseline{verdict}"
        )


if __name__ == "__main__":
    main()
