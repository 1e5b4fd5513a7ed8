"""The gateway with the real OpenSSH client in front and a real sshd behind."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from sshtrail.broker import EmbeddedBroker
from sshtrail.chain import Status, verify_chain
from sshtrail.events import End, Exec, Exit, Output, Start
from sshtrail.wire import Chunk
from tests.support.gateway import GatewayProcess, published
from tests.support.sshd import SshdTarget

pytestmark = pytest.mark.integration


@pytest.fixture
def gateway(tmp_path: Path, broker: EmbeddedBroker, sshd: SshdTarget) -> Iterator[GatewayProcess]:
    process = GatewayProcess(tmp_path / "gw", broker.bootstrap_servers, sshd)
    process.start()
    yield process
    if process.process is not None and process.process.poll() is None:
        process.stop()


def only_session(gateway: GatewayProcess) -> list[Chunk]:
    sessions = published(gateway.servers, gateway.topic)
    assert len(sessions) == 1, sessions.keys()
    [entries] = sessions.values()
    assert len({partition for partition, _, _ in entries}) == 1
    return [chunk for _, _, chunk in entries]


def test_exec_is_exactly_like_direct_and_recorded(
    gateway: GatewayProcess, sshd: SshdTarget
) -> None:
    command = 'printf "%s\\n" "a b" c; echo oops >&2; exit 3'
    direct = subprocess.run(sshd.ssh_command(command), capture_output=True, timeout=30,
                            check=False)  # fmt: skip
    through = subprocess.run(gateway.ssh("alice:t1", command), capture_output=True, timeout=30,
                             check=False)  # fmt: skip
    assert (through.stdout, through.stderr, through.returncode) == (
        direct.stdout, direct.stderr, direct.returncode,
    )  # fmt: skip
    assert through.returncode == 3
    chunks = only_session(gateway)
    assert [chunk.seq for chunk in chunks] == list(range(len(chunks)))
    verdict = verify_chain([(c.seq, c.raw) for c in chunks], {gateway.signing_key})
    assert verdict.status is Status.OK, verdict.detail
    events = [event for chunk in chunks for event in chunk.events]
    start = events[0]
    assert isinstance(start, Start)
    assert (start.operator, start.target, start.user, start.term) == (
        "alice", "t1", sshd.user, "",
    )  # fmt: skip
    assert Exec(events[1].t, "exec", command.encode()) == events[1]
    stdout = b"".join(e.data for e in events if isinstance(e, Output) and not e.stderr)
    stderr = b"".join(e.data for e in events if isinstance(e, Output) and e.stderr)
    assert (stdout, stderr) == (b"a b\nc\n", b"oops\n")
    assert [e.status for e in events if isinstance(e, Exit)] == [3]
    end = events[-1]
    assert isinstance(end, End)
    assert end.reason == "exit status 3"
