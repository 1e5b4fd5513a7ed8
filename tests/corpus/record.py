"""Record the search corpus: every scenario typed through a real gateway to a real sshd.

    python -m tests.corpus.record [NAME ...]

Starts its own embedded broker, an sshd on loopback and a gateway, types each
scenario of :mod:`tests.corpus.scenarios` (or those named) into ``ssh -tt``
with TERM=xterm-256color on an 80x24 terminal, and writes each session's chunks,
as the gateway published them, to ``recordings/NAME.bin``. Needs the programs
the scenarios run (Debian: bash dash zsh fish vim less man-db procps nano tmux
screen). Bounded: every step waits at most 20 s.
"""

from __future__ import annotations

import os
import re
import shlex
import sys
import tempfile
import time
from pathlib import Path

import pexpect

from sshtrail.broker import EmbeddedBroker, free_port
from sshtrail.wire import Chunk
from tests.corpus.scenarios import FILES, SCENARIOS, Scenario
from tests.support.gateway import GatewayProcess, published
from tests.support.sshd import SshdTarget, find_sshd

HERE = Path(__file__).parent / "recordings"
#: Seconds between two keys, as a quick typist.
KEY_GAP_S = 0.04
_KEY = re.compile(rb"\x1b\[[0-9;]*[A-Za-z]|\x1b.|.", re.DOTALL)


def write_recording(path: Path, chunks: list[Chunk]) -> None:
    """Each chunk's message as the gateway published it, after its length (4 bytes)."""
    with path.open("wb") as out:
        for chunk in sorted(chunks, key=lambda c: c.seq):
            out.write(len(chunk.raw).to_bytes(4, "big") + chunk.raw)


def read_recording(path: Path) -> list[bytes]:
    data, messages, at = path.read_bytes(), [], 0
    while at < len(data):
        size = int.from_bytes(data[at : at + 4], "big")
        messages.append(data[at + 4 : at + 4 + size])
        at += 4 + size
    return messages


def type_scenario(gateway: GatewayProcess, work: Path, scenario: Scenario) -> None:
    remote = f"cd {shlex.quote(str(work))} && exec {scenario.program}"
    argv = gateway.ssh("alice:t1", remote, tty=True)
    child = pexpect.spawn(
        argv[0],
        argv[1:],
        timeout=20,
        dimensions=(24, 80),
        env={**os.environ, "TERM": "xterm-256color", "LANG": "C.UTF-8"},
    )
    try:
        child.expect(scenario.ready.encode())
        time.sleep(0.3)
        for step in scenario.steps:
            for key in _KEY.findall(step.keys.encode()):
                child.send(key)
                time.sleep(KEY_GAP_S)
            if step.expect is not None:
                child.expect(step.expect.encode())
            time.sleep(step.pause or 0.2)
        child.expect(pexpect.EOF)
    finally:
        child.close(force=True)


def main(names: list[str]) -> None:
    chosen = [s for s in SCENARIOS if not names or s.name in names]
    binary = find_sshd()
    if binary is None:
        raise SystemExit("needs OpenSSH's sshd (apt-get install openssh-server)")
    HERE.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="sshtrail-corpus-") as scratch:
        root = Path(scratch)
        work = root / "work"
        work.mkdir()
        for name, content in FILES.items():
            (work / name).write_text(content)
        (root / "fish").mkdir()
        with (root / "broker.log").open("ab") as log:
            broker = EmbeddedBroker("127.0.0.1", free_port(), root / "broker", log)
            broker.start()
            sshd = SshdTarget(binary, root / "sshd")
            sshd.start()
            gateway = GatewayProcess(root / "gw", broker.bootstrap_servers, sshd)
            gateway.start()
            try:
                for scenario in chosen:
                    print(f"typing {scenario.name}", flush=True)
                    type_scenario(gateway, work, scenario)
                found = published(broker.bootstrap_servers, gateway.topic, complete=len(chosen))
            finally:
                gateway.stop()
                sshd.stop()
                broker.stop()
    sessions = sorted(found.values(), key=lambda entries: min(c.session_id for _, _, c in entries))
    for scenario, entries in zip(chosen, sessions, strict=True):
        write_recording(HERE / f"{scenario.name}.bin", [chunk for _, _, chunk in entries])
        print(f"wrote {scenario.name}: {len(entries)} chunks", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
