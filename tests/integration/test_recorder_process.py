"""The recorder process (``gateway.recorder = "process"``): a stalled recorder holds
the relay back and loses nothing; a recorder that dies ends only the chains it held,
with a signed end, and the gateway records again at once."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pexpect
import pytest

from sshtrail.chain import Status, verify_chain
from sshtrail.events import Output
from tests.support.gateway import GatewayProcess, Published, published
from tests.support.kafka import KafkaCluster
from tests.support.sshd import SshdTarget
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration

_STARTED = re.compile(r"recorder process (\d+) started")
MB = 1 << 20


@pytest.fixture
def gateway(tmp_path: Path, broker: KafkaCluster, sshd: SshdTarget) -> Iterator[GatewayProcess]:
    gw = GatewayProcess(tmp_path / "gw", broker.bootstrap_servers, sshd, workers=1)
    gw.start()
    yield gw
    if gw.process is not None and gw.process.poll() is None:
        gw.stop()


def recorders(gateway: GatewayProcess) -> list[int]:
    """The recorder processes the gateway started, oldest first (from its log)."""
    return [int(m.group(1)) for line in gateway.output if (m := _STARTED.search(line))]


class Reader:
    """Counts what an operator's ``ssh`` receives, on a thread of its own."""

    def __init__(self, argv: list[str]) -> None:
        self.process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.received = 0
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        while block := os.read(self.process.stdout.fileno(), 1 << 16):
            self.received += len(block)

    def settled(self, still_s: float = 2.0) -> int:
        """What it has received once nothing more came for ``still_s``."""
        last, same_since = -1, 0.0
        deadline = 60.0
        waited = 0.0
        while waited < deadline:
            now = self.received
            if now == last:
                same_since += 0.25
                if same_since >= still_s:
                    return now
            else:
                last, same_since = now, 0.0
            threading.Event().wait(0.25)
            waited += 0.25
        raise AssertionError(f"still receiving after {deadline:.0f} s ({self.received} bytes)")

    def finish(self, timeout: float = 120) -> int:
        self.process.wait(timeout)
        self._thread.join(timeout)
        return self.process.returncode


def output_of(found: Published) -> bytes:
    [entries] = found.values()
    return b"".join(
        e.data for _p, _o, chunk in entries for e in chunk.events if isinstance(e, Output)
    )


def test_a_stalled_recorder_holds_the_relay_back_and_loses_nothing(
    gateway: GatewayProcess, broker: KafkaCluster
) -> None:
    [recorder] = recorders(gateway)
    size = 96 * MB
    os.kill(recorder, signal.SIGSTOP)  # a recorder that takes nothing (a stalled disk)
    try:
        reader = Reader(gateway.ssh("alice:t1", f"head -c {size} /dev/zero"))
        held = reader.settled()
        # What the relay may hold for it: its queue (16 MiB), the socket between them,
        # and the SSH windows and socket buffers on the way -- far from the whole.
        assert held < size * 2 // 3, held
        wait_for(
            lambda: any("the recording is" in line and "behind" in line for line in gateway.output),
            timeout=10,
            what="the gateway to say the recording is behind",
        )
    finally:
        os.kill(recorder, signal.SIGCONT)
    assert reader.finish() == 0
    assert reader.received == size
    found = published(broker.bootstrap_servers, gateway.topic)
    assert output_of(found) == bytes(size)
    [entries] = found.values()
    chunks = [chunk for _p, _o, chunk in entries]
    verdict = verify_chain([(c.seq, c.raw) for c in chunks], {gateway.signing_key})
    assert verdict.status is Status.OK, verdict.detail
    assert any("the recording caught up" in line for line in gateway.output)


def test_a_recorder_killed_ends_its_sessions_with_a_signed_end_and_another_takes_over(
    gateway: GatewayProcess, broker: KafkaCluster
) -> None:
    [first] = recorders(gateway)
    argv = gateway.ssh("alice:t1", tty=True)
    child = pexpect.spawn(argv[0], argv[1:], timeout=30, dimensions=(24, 80))
    child.sendline("PS1='READY> '")
    child.expect("READY> ")
    child.expect("READY> ")
    child.sendline("echo before-$((1+1))")
    child.expect("before-2")
    child.expect("READY> ")
    wait_for(lambda: b"before-2" in gateway.spooled(), timeout=10, what="the spool")
    os.kill(first, signal.SIGKILL)
    child.expect(pexpect.EOF)  # the operator sees the session end
    child.close()
    wait_for(lambda: len(recorders(gateway)) == 2, timeout=30, what="another recorder process")
    said = "".join(gateway.output)
    assert "died" in said, said[-2000:]
    assert "sessions end" in said, said[-2000:]
    # The session is stored whole up to the kill, with an end signed by the gateway's
    # key after what the spool held.
    found = published(broker.bootstrap_servers, gateway.topic)
    [entries] = found.values()
    chunks = [chunk for _p, _o, chunk in entries]
    verdict = verify_chain([(c.seq, c.raw) for c in chunks], {gateway.signing_key})
    assert verdict.status is Status.OK, verdict.detail
    end = chunks[-1].end
    assert end is not None
    assert end.reason.startswith("interrupted"), end
    assert b"before-2" in output_of(found)
    # New sessions are recorded by the new recorder process.
    after = subprocess.run(
        gateway.ssh("alice:t1", "echo after-$((40+2))"),
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert b"after-42" in after.stdout
    both = published(broker.bootstrap_servers, gateway.topic, complete=2)
    assert len(both) == 2
    assert gateway.process is not None
    assert gateway.process.poll() is None
