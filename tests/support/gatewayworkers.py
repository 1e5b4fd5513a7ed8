"""A test gateway's worker processes (``gateway.workers`` > 1): their pids, their spools,
and killing all of them at once as a machine's crash would."""

from __future__ import annotations

import contextlib
import os
import re
import signal
from pathlib import Path

from sshtrail.wire import Chunk
from tests.support.gateway import GatewayProcess

_LISTENING = re.compile(r"gateway worker (\d+) \(pid (\d+)\) listening")


def worker_pids(gateway: GatewayProcess) -> dict[int, int]:
    """Each worker's process id, as its supervisor last logged it; empty for a single
    process (``workers = 1``: no supervisor)."""
    pids = {}
    for line in gateway.output:
        found = _LISTENING.search(line)
        if found:
            pids[int(found[1])] = int(found[2])
    return pids


def kill_every_process(gateway: GatewayProcess) -> None:
    """kill -9 the gateway, every process of it. Killing only the supervisor would have
    its workers stop gracefully (they get SIGTERM when it dies), ending their sessions
    as a planned stop does; so it is stopped first (it cannot replace a worker), its
    workers killed, then it."""
    assert gateway.process is not None
    workers = worker_pids(gateway)
    if workers:
        os.kill(gateway.process.pid, signal.SIGSTOP)
        for pid in workers.values():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    gateway.kill()


def spool_dirs(gateway: GatewayProcess, base: Path | None = None) -> list[Path]:
    """Every worker's spool directory under ``base`` (the gateway's spool, or a copy of
    it): worker 0 keeps the spool itself, worker K ``worker-K`` inside it."""
    base = base or gateway.spool_dir
    return [base, *sorted(p for p in base.glob("worker-*") if p.is_dir())]


def every_spooled_chunk(gateway: GatewayProcess, base: Path | None = None) -> list[Chunk]:
    """The chunks in every worker's spool, each spool in its order."""
    return [c for d in spool_dirs(gateway, base) for c in gateway.spooled_chunks(d)]
