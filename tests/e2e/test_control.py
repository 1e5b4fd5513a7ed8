"""Terminate and lock through the control topic: the real OpenSSH client through real
gateways to a real sshd, requests from ``sshtrail terminate`` / ``lock`` / ``unlock``,
the end recorded by a real store member."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pexpect
import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from sshtrail import control
from sshtrail.broker import free_port
from sshtrail.keyfiles import create_ed25519, load_ed25519_private
from sshtrail.passwords import hash_password
from tests.support import metrics
from tests.support.browser import (
    needs_chromium,
    problems_in_console,
    screen,
    sign_in,
    start_console,
    text_of,
)
from tests.support.controlstack import Stack
from tests.support.gateway import GatewayProcess
from tests.support.kafka import Broker
from tests.support.proxy import StallingProxy
from tests.support.sshd import SshdTarget
from tests.support.waiting import wait_for

pytestmark = pytest.mark.e2e


@pytest.fixture
def stack(tmp_path: Path, broker: Broker, sshd: SshdTarget) -> Iterator[Stack]:
    made = Stack(tmp_path, broker, sshd)
    made.start()
    yield made
    made.stop()


def test_terminate_tells_the_operator_ends_the_session_and_only_its_gateway_acts(
    stack: Stack,
) -> None:
    child, session_id = stack.active_session(stack.two)
    done = stack.run("terminate", session_id[:12], "--reason", "policy check", "--as", "ann")
    assert done.returncode == 0, done.stderr
    assert b"terminated by ann: policy check" in done.stdout
    assert b"gateway gw-two" in done.stdout
    child.expect("terminated by ann: policy check")
    child.expect(pexpect.EOF)
    wait_for(
        lambda: (
            (stack.row(session_id) or {}).get("end_reason") == "terminated by ann: policy check"
        ),
        what="the end recorded with the auditor's name",
        timeout=30,
    )
    shown = stack.run("show", session_id, check=True).stdout.decode()
    assert "terminated by ann: policy check" in shown
    # The other gateway saw the request and did nothing with it.
    assert not any("terminated by" in line for line in stack.one.output)
    logged = json.loads(stack.run("access-log", "--json", "--auditor", "ann", check=True).stdout)
    assert [(e["action"], e["session"], e["detail"]) for e in logged] == [
        ("terminate", str(uuid.UUID(session_id)), "policy check")
    ]
    assert logged[0]["address"].startswith("cli:")
    again = stack.run("terminate", session_id, "--reason", "twice")
    assert again.returncode == 1
    assert b"already ended" in again.stderr


def test_terminate_of_an_unknown_session_says_so(stack: Stack) -> None:
    unknown = stack.run("terminate", "0123456789ab", "--reason", "x")
    assert unknown.returncode == 3
    assert b"no session id starts with 0123456789ab" in unknown.stderr


def test_forged_requests_are_refused_and_logged(stack: Stack) -> None:
    child, session_id = stack.active_session(stack.one)
    forged = control.Terminate(
        request_id=control.new_id(),
        at=control.now_ns(),
        session=session_id,
        auditor="mallory",
        reason="forged",
    )
    intruder = Ed25519PrivateKey.generate()
    producer = Producer({"bootstrap.servers": stack.servers})
    key = session_id.encode()
    for value in (
        control.encode(forged, intruder),  # signed, by a key nobody trusts
        b'{"kind": "terminate", "request_id": "x", "at": 1, "session": "' + key + b'"}',
        b"\x00garbage\xff" * 100,
    ):
        producer.produce(stack.one.control_topic, value, key)
    assert producer.flush(15) == 0
    wait_for(
        lambda: sum("refused a control message" in line for line in stack.one.output) >= 3,
        what="the gateway logging three refusals",
        timeout=30,
    )
    child.sendline("echo still-here-$((1+1))")
    child.expect("still-here-2")  # the session goes on
    child.sendline("exit")
    child.expect(pexpect.EOF)


def test_a_locked_operator_is_refused_until_unlocked(stack: Stack) -> None:
    child, _ = stack.active_session(stack.one)
    locked = stack.run("lock", "alice", "--reason", "incident 7", "--end-sessions", "--as", "ann")
    assert locked.returncode == 0, locked.stderr
    assert b"locked on gateway gw-one" in locked.stdout
    assert b"locked on gateway gw-two" in locked.stdout
    child.expect("operator locked by ann: incident 7")
    child.expect(pexpect.EOF)
    for gateway in (stack.one, stack.two):
        refused = subprocess.run(
            gateway.ssh("alice:t1", "echo hi"), capture_output=True, timeout=30, check=False
        )
        assert refused.returncode != 0
        assert b"locked by ann: incident 7" in refused.stderr, "".join(gateway.output[-15:])
    # A gateway started after the lock knows it from the topic.
    stack.two.stop()
    stack.two.start()
    late = subprocess.run(
        stack.two.ssh("alice:t1", "echo hi"), capture_output=True, timeout=30, check=False
    )
    assert b"locked by ann" in late.stderr
    unlocked = stack.run("unlock", "alice", "--reason", "cleared", "--as", "ann")
    assert unlocked.returncode == 0, unlocked.stderr
    deadline = time.monotonic() + 15
    while True:
        again = subprocess.run(
            stack.one.ssh("alice:t1", "echo hi-$((1+1))"),
            capture_output=True,
            timeout=30,
            check=False,
        )
        if b"hi-2" in again.stdout or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert b"hi-2" in again.stdout


@needs_chromium
def test_an_auditor_watches_live_in_the_browser_and_terminates(
    stack: Stack, browser: object, tmp_path: Path
) -> None:
    from selenium.webdriver.common.by import By

    stack.config.write_text(
        stack.config.read_text()
        + '[[auditors]]\nname = "ann"\nterminate = true\n'
        + f'password_hash = "{hash_password("ann-password-1")}"\n'
    )
    process, url = start_console(stack.config, tmp_path)
    try:
        child, session_id = stack.active_session(stack.one)
        d: Any = browser
        sign_in(d, url, "ann", "ann-password-1")
        d.get(f"{url}/sessions/{session_id}")
        assert d.find_element(By.ID, "live-note")
        wait_for(lambda: "ready-42" in screen(d), what="the screen so far", timeout=20)
        child.sendline("echo typed-while-watched-$((6*7))")
        wait_for(
            lambda: "typed-while-watched-42" in screen(d), what="typing shown live", timeout=10
        )
        d.save_screenshot(str(tmp_path / "live.png"))
        d.find_element(By.ID, "terminate-reason").send_keys("watched enough")
        d.find_element(By.ID, "terminate").click()
        wait_for(
            lambda: "terminated by ann: watched enough" in text_of(d, "outcome"),
            what="the outcome page",
            timeout=30,
        )
        child.expect("terminated by ann: watched enough")
        child.expect(pexpect.EOF)
        reason = "terminated by ann: watched enough"
        wait_for(
            lambda: (stack.row(session_id) or {}).get("end_reason") == reason,
            what="the end stored",
            timeout=30,
        )
        assert reason in stack.run("show", session_id, check=True).stdout.decode()
        d.get(f"{url}/sessions/{session_id}")
        assert reason in d.find_element(By.ID, "fields").text
        assert d.find_elements(By.ID, "terminate") == []  # ended: nothing to terminate
        assert problems_in_console(d) == []
        entries = stack.run("access-log", "--json", "--auditor", "ann", check=True).stdout
        actions = [(e["action"], e["session"], e["detail"]) for e in json.loads(entries)]
        assert ("watch", str(uuid.UUID(session_id)), "") in actions
        assert ("terminate", str(uuid.UUID(session_id)), "watched enough") in actions
        assert ("view", str(uuid.UUID(session_id)), "") in actions
    finally:
        process.terminate()
        process.wait(timeout=30)


# -- requests re-sent, and gateways that have not read the locks (issue 32, #1 and #2) ----


def raw_requests(servers: str, topic: str) -> list[tuple[bytes, bytes, control.Message]]:
    """Every request on ``topic`` as an attacker reads it: key, value, and what it says."""
    reader = Consumer({"bootstrap.servers": servers, "group.id": uuid.uuid4().hex})
    try:
        partitions = reader.list_topics(topic, timeout=15).topics[topic].partitions
        marks = {p: reader.get_watermark_offsets(TopicPartition(topic, p), 15) for p in partitions}
        ends = {p: high for p, (_, high) in marks.items()}
        reader.assign([TopicPartition(topic, p, low) for p, (low, _) in marks.items()])
        found: list[tuple[bytes, bytes, control.Message]] = []
        done: set[int] = {p for p, (low, high) in marks.items() if low == high}
        deadline = time.monotonic() + 30
        while len(done) < len(partitions) and time.monotonic() < deadline:
            for message in reader.consume(100, 0.5):
                if message.error() is not None:
                    continue
                partition, offset = message.partition(), message.offset()
                assert partition is not None
                assert offset is not None
                if offset + 1 >= ends[partition]:
                    done.add(partition)
                key, value = message.key() or b"", message.value() or b""
                if key.startswith(control.RESULT_PREFIX):
                    continue
                body = base64.b64decode(json.loads(value)["body"])
                decoded = msgspec.json.decode(body, type=control.Message)
                found.append((key, value, decoded))
        assert len(done) == len(partitions), "the control topic was not read to its end"
        return sorted(found, key=lambda f: f[2].at)
    finally:
        reader.close()


def _lines_since(gateway: GatewayProcess, mark: int) -> list[str]:
    return gateway.output[mark:]


def _ssh_alice(gateway: GatewayProcess, timeout: float = 60) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        gateway.ssh("alice:t1", "echo hi-$((1+1))"),
        capture_output=True,
        timeout=timeout,
        check=False,
    )


def test_copies_of_old_requests_re_sent_by_a_producer_change_nothing(stack: Stack) -> None:
    """A client that may produce to the control topic re-sends the exact bytes of an old
    ``lock --end-sessions`` and of an old ``unlock``, under their own key and others."""
    first = stack.run("lock", "alice", "--end-sessions", "--reason", "first", "--as", "ann")
    assert first.returncode == 0, first.stderr
    cleared = stack.run("unlock", "alice", "--reason", "cleared", "--as", "ann")
    assert cleared.returncode == 0, cleared.stderr
    wait_for(lambda: b"hi-2" in _ssh_alice(stack.one).stdout, what="alice let in", timeout=20)
    child, _ = stack.active_session(stack.one)  # started after the unlock
    requests = raw_requests(stack.servers, stack.one.control_topic)
    [(lock_key, lock_value)] = [(k, v) for k, v, m in requests if isinstance(m, control.Lock)]
    [(unlock_key, unlock_value)] = [(k, v) for k, v, m in requests if isinstance(m, control.Unlock)]
    attacker = Producer({"bootstrap.servers": stack.servers})

    mark = len(stack.one.output)
    attacker.produce(stack.one.control_topic, lock_value, lock_key)
    assert attacker.flush(15) == 0
    wait_for(
        lambda: any(
            "ignored a control message" in line or "operator alice locked" in line
            for line in _lines_since(stack.one, mark)
        ),
        what="the gateway reading the old lock re-sent",
        timeout=30,
    )
    child.sendline("echo after-the-copy-$((2+3))")
    child.expect("after-the-copy-5")  # the session started after the unlock goes on
    child.sendline("exit")
    child.expect(pexpect.EOF)
    assert not any("operator alice locked" in line for line in _lines_since(stack.one, mark))

    second = stack.run("lock", "alice", "--reason", "second", "--as", "ann")
    assert second.returncode == 0, second.stderr
    marks = {gw.instance: len(gw.output) for gw in (stack.one, stack.two)}
    other_keys = [
        b"operator:bob",
        b"operator:alice2",
        b"0190f0e0-0000-7000-8000-00000000000" + b"1",
    ]
    for key in [unlock_key, *other_keys]:
        attacker.produce(stack.one.control_topic, unlock_value, key)
    assert attacker.flush(15) == 0
    for gateway in (stack.one, stack.two):

        def refused_all(gateway: GatewayProcess = gateway) -> bool:
            lines = _lines_since(gateway, marks[gateway.instance])
            turned_away = ("ignored a control message", "refused a control message")
            return sum(any(t in line for t in turned_away) for line in lines) >= 4

        wait_for(refused_all, what=f"{gateway.instance} refusing the four copies", timeout=30)
        refused = _ssh_alice(gateway)
        assert b"hi-2" not in refused.stdout
        assert b"locked by ann: second" in refused.stderr, "".join(gateway.output[-15:])
    assert any(
        "re-sent under another key" in line
        for line in _lines_since(stack.one, marks[stack.one.instance])
    )
    # A gateway that starts now rebuilds the locks from the topic: the newest signed wins,
    # not the last read.
    stack.two.stop()
    stack.two.start()
    late = _ssh_alice(stack.two)
    assert b"hi-2" not in late.stdout
    assert b"locked by ann: second" in late.stderr, "".join(stack.two.output[-15:])
    # Compaction keeps only a key's last message: the copy of the unlock outlives the
    # second lock. Deleting every record before it does to the partition what
    # compaction would do to that key; a gateway restarted after it still knows.
    partition, offset = _last_of(stack.servers, stack.one.control_topic, unlock_key)
    admin = AdminClient({"bootstrap.servers": stack.servers})
    target = TopicPartition(stack.one.control_topic, partition, offset)
    for future in admin.delete_records([target]).values():
        future.result(15)
    assert not any(
        isinstance(m, control.Lock) and m.reason == "second"
        for _, _, m in raw_requests(stack.servers, stack.one.control_topic)
    )
    stack.two.stop()
    stack.two.start()
    compacted = _ssh_alice(stack.two)
    assert b"hi-2" not in compacted.stdout
    assert b"locked by ann: second" in compacted.stderr, "".join(stack.two.output[-15:])


def _last_of(servers: str, topic: str, key: bytes) -> tuple[int, int]:
    """The partition and offset of the last message under ``key``."""
    reader = Consumer({"bootstrap.servers": servers, "group.id": uuid.uuid4().hex})
    try:
        partitions = reader.list_topics(topic, timeout=15).topics[topic].partitions
        reader.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
        ends = {
            p: reader.get_watermark_offsets(TopicPartition(topic, p), 15)[1] for p in partitions
        }
        last: tuple[int, int] | None = None
        read = {p: 0 for p in partitions}
        deadline = time.monotonic() + 30
        while any(read[p] < ends[p] for p in partitions) and time.monotonic() < deadline:
            for message in reader.consume(100, 0.5):
                partition, offset = message.partition(), message.offset()
                if message.error() is not None or partition is None or offset is None:
                    continue
                read[partition] = offset + 1
                if message.key() == key:
                    last = (partition, offset)
        assert last is not None, f"no message under {key!r}"
        return last
    finally:
        reader.close()


def test_a_termination_older_than_the_window_is_refused_though_the_gateway_is_younger(
    stack: Stack,
) -> None:
    """Signed (by the trusted key) 120 s before the gateways were ready: after they
    started reading, but more than :data:`control.FRESH_S` before now."""
    child, session_id = stack.active_session(stack.one)
    signer = load_ed25519_private(stack.one.control_key, "control.signing_key")
    old = control.Terminate(
        request_id=control.new_id(),
        at=stack.ready_ns - control.FRESH_S * 1_000_000_000,
        session=session_id,
        auditor="ann",
        reason="long ago",
    )
    mark = len(stack.one.output)
    producer = Producer({"bootstrap.servers": stack.servers})
    producer.produce(stack.one.control_topic, control.encode(old, signer), session_id.encode())
    assert producer.flush(15) == 0
    wait_for(
        lambda: any(
            "ignored a control message" in line or "terminated by ann" in line
            for line in _lines_since(stack.one, mark)
        ),
        what="the gateway reading the old termination",
        timeout=30,
    )
    child.sendline("echo still-here-$((3+4))")
    child.expect("still-here-7")
    child.sendline("exit")
    child.expect(pexpect.EOF)


def _control_signer(gateway: GatewayProcess) -> Ed25519PrivateKey:
    if not gateway.control_key.exists():
        create_ed25519(gateway.control_key, "sshtrail control key")
    return load_ed25519_private(gateway.control_key, "control.signing_key")


def _lock_alice(signer: Ed25519PrivateKey, reason: str) -> tuple[bytes, bytes]:
    request = control.Lock(
        request_id=control.new_id(),
        at=control.now_ns(),
        operator="alice",
        auditor="ann",
        reason=reason,
    )
    return control.key_of(request), control.encode(request, signer)


def test_a_gateway_that_cannot_reach_the_broker_refuses_logins_until_it_has_read_the_locks(
    tmp_path: Path, broker: Broker, sshd: SshdTarget
) -> None:
    metrics_port = free_port()
    gateway = GatewayProcess(
        tmp_path / "gw", broker.bootstrap_servers, sshd, extra=f"metrics_port = {metrics_port}\n"
    )
    key, value = _lock_alice(_control_signer(gateway), "incident 8")
    producer = Producer({"bootstrap.servers": broker.bootstrap_servers})
    producer.produce(gateway.control_topic, value, key)
    assert producer.flush(15) == 0
    # The gateway's bootstrap address answers nothing until the proxy listens.
    broker_port = int(broker.bootstrap_servers.split(",")[0].rsplit(":", 1)[1])
    proxy = StallingProxy(broker_port)
    gateway.servers = f"127.0.0.1:{proxy.port}"
    gateway.start(admitting=False)
    try:
        held = _ssh_alice(gateway)
        assert b"hi-2" not in held.stdout
        assert b"has not yet read which operators are locked" in held.stderr, held.stderr
        assert (
            metrics.value(
                metrics.scrape(metrics_port),
                "sshtrail_gateway_refusals_total",
                reason="locks not read",
            )
            == 1
        )
        log = "".join(gateway.output)  # the login waited for the locks, then was refused
        assert "login waits for the operator locks" in log
        assert "operator locks not known yet" in log
        with proxy:
            wait_for(
                lambda: any("control topic read to its end" in line for line in gateway.output),
                what="the gateway reading the control topic once the broker answers",
                timeout=60,
            )
            refused = _ssh_alice(gateway)
            assert b"hi-2" not in refused.stdout
            assert b"locked by ann: incident 8" in refused.stderr, refused.stderr
    finally:
        gateway.stop()


#: Requests of other operators on the topic before alice's lock: a long-lived topic.
HISTORY = int(os.environ.get("SSHTRAIL_TEST_CONTROL_HISTORY", "20000"))


def test_a_locked_operator_is_refused_in_the_gateways_first_moments(
    tmp_path: Path, broker: Broker, sshd: SshdTarget
) -> None:
    gateway = GatewayProcess(tmp_path / "gw", broker.bootstrap_servers, sshd)
    signer = _control_signer(gateway)
    producer = Producer({"bootstrap.servers": broker.bootstrap_servers, "linger.ms": 50})
    long_ago = control.now_ns() - 86_400 * 1_000_000_000
    for n in range(HISTORY):
        request = control.Lock(
            request_id=control.new_id(),
            at=long_ago + n,
            operator=f"op{n}",
            auditor="ann",
            reason="old",
        )
        producer.produce(
            gateway.control_topic, control.encode(request, signer), control.key_of(request)
        )
        if n % 1000 == 0:
            producer.poll(0)
    key, value = _lock_alice(signer, "incident 9")
    producer.produce(gateway.control_topic, value, key)
    assert producer.flush(30) == 0
    gateway.start(admitting=False)
    try:
        first = _ssh_alice(gateway)  # as soon as the gateway listens
        assert b"hi-2" not in first.stdout
        assert b"locked by ann: incident 9" in first.stderr, first.stderr
    finally:
        gateway.stop()
