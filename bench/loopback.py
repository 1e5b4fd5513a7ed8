"""The bed the gateway benches run on, all on loopback: a scratch folder holding a random
file to send, the embedded broker and a real OpenSSH sshd, stopped when the run ends."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from bench.scratch import scratch
from sshtrail.broker import EmbeddedBroker, free_port
from tests.support.sshd import SshdTarget, find_sshd

#: What a gateway's settings need when pointed at an embedded broker by its address
#: (as a bench does): its readers -- the control listener -- rest between looks at
#: the log ends, as under ``up --demo``. The embedded broker answers an empty fetch
#: at once, so a reader that fetches in a loop spins: measured, half a core in the
#: gateway and a third of one in the broker, idle or not (docs/performance.md).
EMBEDDED_IDLE_CHECK_MS = 100
EMBEDDED_READERS = f"[consumer]\nidle_check_ms = {EMBEDDED_IDLE_CHECK_MS}\n"


@dataclass(frozen=True)
class Loopback:
    """What a bench puts its gateways between: the target and the broker, started."""

    work: Path
    #: ``size`` random bytes, the bulk a client reads (random: nothing compresses it).
    blob: Path
    size: int
    broker: EmbeddedBroker
    sshd: SshdTarget


@contextmanager
def loopback(prefix: str, size: int) -> Iterator[Loopback]:
    """Start the bed in a new scratch folder named ``prefix...`` with a blob of ``size``
    bytes; exits the process with a hint if this machine has no sshd."""
    sshd_binary = find_sshd()
    if sshd_binary is None:
        sys.exit("bench needs OpenSSH's sshd (apt-get install openssh-server)")
    work = scratch(prefix)
    blob = work / "blob.bin"
    blob.write_bytes(os.urandom(size))
    with (work / "broker.log").open("ab") as log:
        broker = EmbeddedBroker("127.0.0.1", free_port(), work / "broker", log)
        broker.start()
    try:
        sshd = SshdTarget(sshd_binary, work / "sshd")
        sshd.start()
        try:
            yield Loopback(work, blob, size, broker, sshd)
        finally:
            sshd.stop()
    finally:
        broker.stop()
