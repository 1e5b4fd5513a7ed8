"""Nothing recorded is lost: broker outages, a killed gateway, bulk output."""

from __future__ import annotations

import hashlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pexpect
import pytest

from sshtrail.chain import Status, verify_chain
from sshtrail.events import Input, Output
from tests.support.gateway import GatewayProcess, Published, published
from tests.support.kafka import KafkaCluster
from tests.support.sshd import SshdTarget
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def module_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaCluster]:
    cluster = KafkaCluster(tmp_path_factory.mktemp("kafka"))
    cluster.start()
    yield cluster
    cluster.stop(timeout=10)


@pytest.fixture
def own_broker(module_broker: KafkaCluster) -> KafkaCluster:
    """A one-node Kafka this module's tests may stop and start (the run's shared one must
    stay up): one per module, running again at each test's start (its topics are the
    test's own)."""
    module_broker.start()
    return module_broker


def shell_through_gateway(
    tmp_path: Path, broker: KafkaCluster, sshd: SshdTarget
) -> tuple[GatewayProcess, pexpect.spawn]:
    """A gateway started on ``broker``, and a shell through it at a known prompt."""
    gateway = GatewayProcess(tmp_path / "gw", broker.bootstrap_servers, sshd)
    gateway.start()
    argv = gateway.ssh("alice:t1", tty=True)
    child = pexpect.spawn(
        argv[0], argv[1:], timeout=30, dimensions=(24, 80), env={**os.environ, "TERM": "xterm"}
    )
    child.sendline("PS1='READY> '")
    child.expect("READY> ")
    child.expect("READY> ")  # the echo of the line, then the prompt itself
    return gateway, child


def run(child: pexpect.spawn, command: str, expect: str) -> None:
    child.sendline(command)
    child.expect(expect)
    child.expect("READY> ")


def test_broker_down_mid_session_loses_nothing_and_duplicates_nothing(
    tmp_path: Path, own_broker: KafkaCluster, sshd: SshdTarget
) -> None:
    gateway, child = shell_through_gateway(tmp_path, own_broker, sshd)
    run(child, "echo before-$((1+1))", "before-2")
    own_broker.stop()
    for i in range(5):  # the session goes on while the broker is away
        run(child, f"echo during-{i}-$(({i}+{i}))", f"during-{i}-{i + i}")
    wait_for(lambda: b"during-4-8" in gateway.spooled(), timeout=10, what="the spool")
    own_broker.start()
    run(child, "echo after-$((3+3))", "after-6")
    child.sendline("exit")
    child.expect(pexpect.EOF)
    child.close()
    [entries] = published(own_broker.bootstrap_servers, gateway.topic).values()
    seqs = [chunk.seq for _, _, chunk in entries]
    assert seqs == list(range(len(seqs)))  # once each, in order
    assert [offset for _, offset, _ in entries] == sorted(offset for _, offset, _ in entries)
    chunks = [chunk for _, _, chunk in entries]
    verdict = verify_chain([(c.seq, c.raw) for c in chunks], {gateway.signing_key})
    # Once seen in a full run (the end not in Kafka within 120 s): what the gateway said.
    said = "".join(gateway.output[-40:])
    assert verdict.status is Status.OK, f"{verdict.detail}\ngateway:\n{said}"
    output = b"".join(e.data for c in chunks for e in c.events if isinstance(e, Output))
    for text in (b"before-2", b"during-0-0", b"during-4-8", b"after-6"):  # computed remotely
        assert text in output
    gateway.stop()


def test_gateway_killed_with_a_full_spool_publishes_it_after_restart(
    tmp_path: Path, own_broker: KafkaCluster, sshd: SshdTarget
) -> None:
    gateway, child = shell_through_gateway(tmp_path, own_broker, sshd)
    run(child, "echo one-$((0+1))", "one-1")
    own_broker.stop()
    for i in range(3):
        run(child, f"echo spooled-{i}-$(({i}*10))", f"spooled-{i}-{i * 10}")
    wait_for(lambda: b"spooled-2-20" in gateway.spooled(), timeout=10, what="the spool")
    gateway.kill()
    child.expect(pexpect.EOF)
    child.close()
    own_broker.start()
    gateway.start()  # drains the spool on start, then ends the session it left open

    def spool_arrived(found: Published) -> bool:
        chunks = [c for entries in found.values() for _, _, c in entries]
        return any(b"spooled-2-20" in c.raw for c in chunks) and any(c.end for c in chunks)

    [entries] = published(
        own_broker.bootstrap_servers, gateway.topic, until=spool_arrived, timeout=60
    ).values()
    chunks = [chunk for _, _, chunk in entries]
    seqs = sorted({c.seq for c in chunks})
    assert seqs == list(range(len(seqs)))  # no hole: everything spooled came through
    verdict = verify_chain(
        [(c.seq, c.raw) for c in {c.seq: c for c in chunks}.values()], {gateway.signing_key}
    )
    # The gateway died before the end; started again, it signed one after what its
    # spool held for Kafka (issue 32, #9).
    assert (verdict.status, verdict.interrupted) == (Status.OK, "gateway")
    [(offset, end)] = [(o, c) for _, o, c in entries if c.end is not None]
    assert end.seq == seqs[-1]
    assert offset == max(o for _, o, _ in entries)
    assert end.end is not None
    assert end.end.reason.startswith("interrupted: the gateway stopped unexpectedly")
    output = b"".join(e.data for c in chunks for e in c.events if isinstance(e, Output))
    assert b"spooled-2-20" in output
    typed = b"".join(e.data for c in chunks for e in c.events if isinstance(e, Input))
    assert b"echo spooled-2-$((2*10))" in typed
    gateway.stop()


@pytest.mark.e2e
def test_100_mb_of_output_is_byte_exact_at_the_client_and_in_the_recording(
    tmp_path: Path, broker: KafkaCluster, sshd: SshdTarget
) -> None:
    gateway = GatewayProcess(tmp_path / "gw", broker.bootstrap_servers, sshd)
    gateway.start()
    size = 100_000_000
    sent = tmp_path / "sent.bin"
    command = f"head -c {size} /dev/urandom | tee {sent}"
    result = subprocess.run(
        gateway.ssh("alice:t1", command), capture_output=True, timeout=300, check=False
    )
    assert result.returncode == 0
    expected = hashlib.sha256(sent.read_bytes()).hexdigest()
    assert len(result.stdout) == size
    assert hashlib.sha256(result.stdout).hexdigest() == expected
    [entries] = published(broker.bootstrap_servers, gateway.topic, timeout=300).values()
    recorded = hashlib.sha256()
    for _, _, chunk in sorted(entries, key=lambda entry: entry[2].seq):
        for event in chunk.events:
            if isinstance(event, Output):
                recorded.update(event.data)
    assert recorded.hexdigest() == expected
    gateway.stop()


SMALL_SPOOL = "[gateway.spool]\nmax_bytes = 1\nreserve_bytes = {reserve}\npolicy = {policy!r}"


def ssh_run(gateway: GatewayProcess, command: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        gateway.ssh("alice:t1", command), capture_output=True, timeout=60, check=False
    )


def spooling_gateway(
    tmp_path: Path, broker: KafkaCluster, sshd: SshdTarget, *, reserve: int, policy: str
) -> GatewayProcess:
    """A started gateway with a spool of ``reserve`` bytes and one more, whose broker is
    then stopped: everything it records stays in the spool, which is soon full."""
    extra = SMALL_SPOOL.format(reserve=reserve, policy=policy)
    gateway = GatewayProcess(tmp_path / "gw", broker.bootstrap_servers, sshd, extra=extra)
    gateway.start()
    broker.stop()
    return gateway


def end_reasons(sessions: Published) -> list[str]:
    """The end reasons of the ``sessions`` that ended, sorted."""
    return sorted(str(e[-1][2].end.reason) for e in sessions.values() if e[-1][2].end)


def test_full_spool_fail_closed_refuses_new_sessions_until_it_drains(
    tmp_path: Path, own_broker: KafkaCluster, sshd: SshdTarget
) -> None:
    gateway = spooling_gateway(tmp_path, own_broker, sshd, reserve=10_000_000, policy="fail-closed")
    assert ssh_run(gateway, "echo recorded-into-the-reserve").returncode == 0
    refused = ssh_run(gateway, "echo never")
    assert refused.returncode == 1
    assert b"the recording spool is full" in refused.stderr
    own_broker.start()
    wait_for(lambda: gateway.spool_pending() == 0, timeout=60, what="the spool to drain")
    later = ssh_run(gateway, "echo after")
    assert later.stdout == b"after\n", later.stderr
    sessions = published(own_broker.bootstrap_servers, gateway.topic, complete=3)
    assert "refused: spool full" in end_reasons(sessions)
    assert any(b"recorded-into-the-reserve" in c.raw for e in sessions.values() for _, _, c in e)
    gateway.stop()


def test_spool_beyond_its_reserve_pauses_sessions_instead_of_dropping(
    tmp_path: Path, own_broker: KafkaCluster, sshd: SshdTarget
) -> None:
    gateway = spooling_gateway(tmp_path, own_broker, sshd, reserve=0, policy="fail-closed")
    session = subprocess.Popen(
        gateway.ssh("alice:t1", "echo a; sleep 0.3; echo b"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    wait_for(
        lambda: any("all sessions paused" in line for line in gateway.output),
        timeout=30,
        what="the gateway pausing its sessions",
    )
    assert session.poll() is None  # paused: its output waits for room in the spool
    own_broker.start()
    out, _ = session.communicate(timeout=60)
    assert out == b"a\nb\n"
    assert session.returncode == 0
    # Paused, not dropped: the recording holds every byte the client saw, in order.
    [entries] = published(own_broker.bootstrap_servers, gateway.topic).values()
    recorded = b"".join(
        event.data for _, _, chunk in entries for event in chunk.events if isinstance(event, Output)
    )
    assert recorded == b"a\nb\n"
    assert [chunk.seq for _, _, chunk in entries] == list(range(len(entries)))
    gateway.stop()


def test_full_spool_fail_open_lets_sessions_in_unrecorded_and_says_so(
    tmp_path: Path, own_broker: KafkaCluster, sshd: SshdTarget
) -> None:
    gateway = spooling_gateway(tmp_path, own_broker, sshd, reserve=10_000_000, policy="fail-open")
    assert ssh_run(gateway, "echo first").returncode == 0
    second = ssh_run(gateway, "echo secret-$((2*21))")
    assert second.stdout == b"secret-42\n"
    own_broker.start()
    sessions = published(own_broker.bootstrap_servers, gateway.topic, complete=2)
    assert not any(b"secret-42" in c.raw for e in sessions.values() for _, _, c in e)
    assert end_reasons(sessions) == ["exit status 0", "unrecorded: spool full (fail-open)"]
    log = gateway.stop()
    assert "this session is NOT recorded" in log
