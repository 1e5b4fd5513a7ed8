"""lag, reprocess, index --rebuild and watch against sessions recorded through the gateway."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from confluent_kafka import TopicPartition
from confluent_kafka.admin import AdminClient
from sqlalchemy import delete, func, select

from consumer.store import CHUNKS, SESSIONS
from sshtrail import search
from sshtrail.db import make_engine
from sshtrail.keyfiles import load_ed25519_private
from tests.support.consumers import create_topics, group_lag, start_member, wait_for, write_config
from tests.support.recorded import Recorded
from tests.support.recordings import keyed, produce, typed_session

pytestmark = pytest.mark.e2e


def lag_json(recorded: Recorded, *argv: str) -> list[dict[str, object]]:
    """The partitions' rows of ``lag --json`` (whatever its exit status)."""
    done = recorded.run("lag", "--json", *argv, check=False)
    assert done.returncode in (0, 1, 2), done.stderr
    document = json.loads(done.stdout)
    return [row for group in document["groups"] for row in group["partitions"]]


def test_lag_matches_the_broker_grows_while_stopped_and_drains(recorded: Recorded) -> None:
    servers, topic = recorded.gateway.servers, recorded.gateway.topic
    store_group = f"{topic}-store"
    rows = lag_json(recorded)
    assert {r["group"] for r in rows} == {store_group, f"{topic}-index"}
    assert sum(int(str(r["lag"])) for r in rows) == 0  # both caught up when they stopped
    produced = produce(servers, topic, keyed(*typed_session([("uptime", "up 1 day")])))

    def behind_by_a_second() -> bool:
        rows = lag_json(recorded, "--group", store_group)
        return all(float(str(r["time_lag_s"])) >= 1 for r in rows if r["lag"])

    wait_for(behind_by_a_second, timeout=30, what="a second of time lag")
    first = {r["partition"]: r for r in lag_json(recorded, "--group", store_group)}
    assert {p: r["lag"] for p, r in first.items()} == group_lag(servers, store_group, topic)
    assert sum(int(str(r["lag"])) for r in first.values()) == produced
    behind = [p for p, r in first.items() if r["lag"]]

    def time_lag_grew() -> bool:
        now = {r["partition"]: r for r in lag_json(recorded, "--group", store_group)}
        return all(
            float(str(now[p]["time_lag_s"])) > float(str(first[p]["time_lag_s"])) for p in behind
        )

    wait_for(time_lag_grew, timeout=30, what="the time lag to grow")
    later = {r["partition"]: r for r in lag_json(recorded, "--group", store_group)}
    for partition in behind:  # time lag grows while the group is stopped
        grown = float(str(later[partition]["time_lag_s"]))
        assert grown > float(str(first[partition]["time_lag_s"])) >= 1
    assert {r["status"] for r in later.values() if r["lag"]} == {"STOP"}  # no member
    stopped = recorded.run("lag", "--group", store_group, check=False)
    assert stopped.returncode == 2
    table = stopped.stdout.decode()
    assert table.splitlines()[0].split() == [
        "GROUP",
        "TOPIC",
        "PARTITION",
        "STATUS",
        "CURRENT-OFFSET",
        "LOG-END-OFFSET",
        "LAG",
        "TIME-LAG",
        "CONSUMER-ID",
        "HOST",
        "CLIENT-ID",
    ]
    assert f"GROUP {store_group}: STOP, lag {produced} messages" in table
    member = start_member(recorded.config, "store")
    try:
        wait_for(lambda: sum(group_lag(servers, store_group, topic).values()) == 0)
        running = lag_json(recorded, "--group", store_group)
        assert sum(int(str(r["lag"])) for r in running) == 0
        assert {r["status"] for r in running} == {"OK"}
        assert recorded.run("lag", "--group", store_group).returncode == 0
        assert all(r["consumer_id"] and r["client_id"] for r in running)  # owned by the member
    finally:
        member.stop(signal.SIGTERM)


def test_reprocess_restores_deleted_rows_identically(recorded: Recorded) -> None:
    engine = make_engine(recorded.store_url)
    with engine.connect() as conn:
        before_sessions = {r.id: tuple(r) for r in conn.execute(select(SESSIONS))}
        before_chunks = {(r.session_id, r.seq): tuple(r) for r in conn.execute(select(CHUNKS))}
    victim = next(iter(before_sessions))
    with engine.begin() as conn:
        conn.execute(delete(CHUNKS).where(CHUNKS.c.session_id == victim))
        conn.execute(delete(SESSIONS).where(SESSIONS.c.id == victim))
    done = recorded.run("reprocess", "--group", "store", "--from-offset", "0")
    report = done.stdout.decode()
    lost = sum(1 for sid, _ in before_chunks if sid == victim)
    assert f"{lost} written" in report
    with engine.connect() as conn:
        after_sessions = {r.id: tuple(r) for r in conn.execute(select(SESSIONS))}
        after_chunks = {(r.session_id, r.seq): tuple(r) for r in conn.execute(select(CHUNKS))}
    engine.dispose()
    assert {k: v for k, v in after_sessions.items() if k in before_sessions} == before_sessions
    assert {k: v for k, v in after_chunks.items() if k in before_chunks} == before_chunks


def test_reprocess_refuses_offsets_no_longer_retained(recorded: Recorded, tmp_path: Path) -> None:
    servers = recorded.gateway.servers
    topic = f"retained.{time.time_ns()}"
    create_topics(servers, topic, topic + ".dlq", partitions=1)
    produce(servers, topic, keyed(*typed_session([("ls", "a b")])))
    admin = AdminClient({"bootstrap.servers": servers})  # referenced until its futures resolve
    for future in admin.delete_records([TopicPartition(topic, 0, 2)]).values():
        future.result(10)
    config = write_config(tmp_path / "c.toml", servers, topic, recorded.store_url)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "sshtrail",
            "--config",
            str(config),
            "reprocess",
            "--group",
            "store",
            "--from-offset",
            "0",
        ],
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert b"offset 0 is no longer retained; the earliest offset is 2" in done.stderr


def test_reprocess_refuses_bad_ranges_and_a_dry_run_writes_nothing(recorded: Recorded) -> None:
    backwards = recorded.run(
        "reprocess", "--group", "store", "--from-offset", "5", "--to-offset", "2", check=False
    )
    assert backwards.returncode == 2
    assert b"--to-offset 2 is not after --from-offset 5" in backwards.stderr
    missing = recorded.run(
        "reprocess", "--group", "store", "--from-offset", "0", "--partition", "9", check=False
    )
    assert missing.returncode == 2
    assert b"has no partition 9: its partitions are 0..2" in missing.stderr
    negative = recorded.run("reprocess", "--group", "index", "--from-offset", "-1", check=False)
    assert negative.returncode == 2
    engine = make_engine(recorded.store_url)

    def chunks() -> int:
        with engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(CHUNKS)).scalar_one())

    before = chunks()
    with engine.begin() as conn:
        conn.execute(delete(CHUNKS))
    dry = recorded.run("reprocess", "--group", "store", "--from-offset", "0", "--dry-run")
    assert chunks() == 0
    report = dry.stdout.decode()
    assert "would read offsets 0.." in report
    assert "store: nothing read or written (--dry-run)" in report
    done = recorded.run("reprocess", "--group", "store", "--from-offset", "0")
    assert f"{before} written" in done.stdout.decode()
    engine.dispose()


def documents(url: str) -> set[tuple[object, ...]]:
    engine = make_engine(url)
    d = search.DOCS.c
    with engine.connect() as conn:
        found = {
            tuple(r)
            for r in conn.execute(select(d.session_id, d.kind, d.ordinal, d.seq, d.t, d.text))
        }
    engine.dispose()
    return found


def test_index_rebuild_from_the_store_equals_live_indexing(recorded: Recorded) -> None:
    live = documents(recorded.search_url)
    assert live
    done = recorded.run("index", "--rebuild")
    assert b"index rebuilt from the store" in done.stdout
    rebuilt = documents(recorded.search_url)
    # Sessions the (stopped) index group never saw are in the rebuild too.
    seen_live = {doc[0] for doc in live}
    assert {doc for doc in rebuilt if doc[0] in seen_live} == live


def test_watch_follows_a_session_live_until_it_ends(recorded: Recorded) -> None:
    servers, topic = recorded.gateway.servers, recorded.gateway.topic
    # Issue 14, defect 6: what the session prints must not make the watcher's terminal
    # answer (cursor position, device attributes) or take its clipboard.
    hostile = "\x1b[6n\x1b[c\x1b]52;c;cHduZWQ=\x07queried"
    # Signed by the gateway's recording key: watch takes only what a trusted gateway signed.
    gateway_key = recorded.gateway.workdir / "state" / "gateway" / "recording_ed25519_key"
    session_id, messages = typed_session(
        [("echo live-one", "live-one"), ("printf q", hostile), ("echo live-two", "live-two")],
        signer=load_ed25519_private(gateway_key, "gateway.signing_key"),
    )
    half = len(messages) // 2
    produce(servers, topic, keyed(session_id, messages[:half]))
    watcher = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "sshtrail",
            "--config",
            str(recorded.config),
            "watch",
            str(session_id),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    shown = bytearray()

    def read() -> None:  # what the watcher's terminal gets, as it gets it
        assert watcher.stdout is not None
        while piece := os.read(watcher.stdout.fileno(), 4096):
            shown.extend(piece)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        # The first half is shown before the second exists: watch streams, it does
        # not buffer until the end (a buffering watch would time out here).
        wait_for(lambda: b"live-one\r\n" in shown, timeout=30, what="the first half, live")
        assert b"live-two" not in shown
        assert watcher.poll() is None, "watch must wait for the rest of the session"
        produce(servers, topic, keyed(session_id, messages[half:]))
        watcher.wait(60)
        reader.join(10)
        err = watcher.stderr.read() if watcher.stderr is not None else b""
    finally:
        if watcher.poll() is None:
            watcher.kill()
    out = bytes(shown)
    assert watcher.returncode == 0, err
    assert b"live-one\r\n" in out
    assert b"live-two\r\n" in out
    assert b"queried" in out
    for forbidden in (b"\x1b[6n", b"\x1b[c", b"\x1b]52"):
        assert forbidden not in out
    assert b"session ended: exit status 0" in err
    # A finished session through the gateway: from its first chunk to its end.
    short = next(
        str(r["short_id"])
        for r in json.loads(recorded.run("sessions", "--json").stdout)
        if r["exit_status"] == 3
    )
    finished = recorded.run("watch", short)
    assert finished.stdout.endswith(b"audit-42\n\r\n")  # nothing the session left to undo
