"""What the group runner promises, on the in-memory broker (and on the embedded one).

* no offset is committed before its message is written or dead-lettered --
  checked at every commit the broker accepts, whatever happens meanwhile;
* a rebalance in the middle of a batch, or while the database is away,
  loses and doubles nothing;
* while the database is away the member stays in the group, its partitions
  paused, and retries;
* invalid messages go to the dead-letter topic with their origin; too many
  in a row stall the member instead;
* chunks the database refuses are quarantined, and do not hold up the rest;
* offsets the broker deleted before the group read them are reported lost,
  never passed over in silence.
"""

from __future__ import annotations

import dataclasses
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from consumer.deadletter import (
    HEADER_ERROR,
    HEADER_LOST_END,
    HEADER_OFFSET,
    HEADER_PARTITION,
    DeadLetters,
)
from consumer.messages import Received, Refused
from consumer.metrics import ConsumerMetrics
from consumer.runner import GroupRunner, RunnerOptions
from consumer.writer import Written
from sshtrail import events as ev
from sshtrail.errors import DatabaseError, UnstorableError
from sshtrail.provenance import Provenance
from sshtrail.wire import chain_digest, encode_chunk
from tests.support.bus import Bus, CheckedConsumer, KafkaBus, LocalBus
from tests.support.kafka import Broker
from tests.support.recordings import SIGNER, recording
from tests.support.waiting import wait_for as wait_until

FAST = RunnerOptions(batch_size=50, batch_wait_s=0.01, retry_initial_s=0.01, retry_max_s=0.05)


@dataclass
class MemoryStore:
    """A writer keeping chunks in a dict: idempotent, can be 'away' or refuse sessions."""

    chunks: dict[tuple[uuid.UUID, int], tuple[int, int]] = field(default_factory=dict)
    down: bool = False
    #: Away for these members only (by thread name): one member stuck, the other not.
    down_for: set[str] = field(default_factory=set)
    refused: set[tuple[uuid.UUID, int]] = field(default_factory=set)
    quarantined: dict[uuid.UUID, str] = field(default_factory=dict)
    #: Chunks no trusted gateway signed, as handed over: (partition, offset) -> reason.
    evidence: dict[tuple[int, int], str] = field(default_factory=dict)
    attempts: int = 0
    #: Seconds each write takes.
    write_delay_s: float = 0.0
    #: The partitions each housekeeping call was told are settled, and how many chunks
    #: of each partition were stored then.
    settled: list[tuple[frozenset[int], dict[int, int]]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def write(self, chunks: Sequence[Received]) -> Written:
        time.sleep(self.write_delay_s)
        with self.lock:
            self.attempts += 1
            if self.down or threading.current_thread().name in self.down_for:
                raise DatabaseError("database write failed: connection refused")
            for r in chunks:
                if (r.chunk.session_id, r.chunk.seq) in self.refused:
                    raise UnstorableError("value too long for type character varying(255)")
            new = 0
            for r in chunks:
                key = (r.chunk.session_id, r.chunk.seq)
                if key not in self.chunks:
                    self.chunks[key] = (r.partition, r.offset)
                    new += 1
            return Written(new, len(chunks) - new)

    def refuse(self, refused: Sequence[Refused]) -> None:
        with self.lock:
            if self.down:
                raise DatabaseError("database write failed: connection refused")
            for item in refused:
                self.evidence[(item.received.partition, item.received.offset)] = item.reason

    def quarantine(self, session_id: uuid.UUID, reason: str, chunks: Sequence[Received]) -> None:
        with self.lock:
            if self.down:
                raise DatabaseError("database quarantine failed: connection refused")
            self.quarantined[session_id] = reason

    def background(self, budget_s: float) -> bool:
        return False

    def housekeeping(self, settled: frozenset[int]) -> None:
        with self.lock:
            stored = Counter(partition for partition, _offset in self.chunks.values())
            self.settled.append((settled, dict(stored)))


@dataclass
class Harness:
    bus: Bus
    store: MemoryStore
    topic: str
    violations: list[str] = field(default_factory=list)
    last_commit: dict[int, int] = field(default_factory=dict)
    members: list[CheckedConsumer] = field(default_factory=list)
    runners: list[tuple[GroupRunner, threading.Thread, ConsumerMetrics]] = field(
        default_factory=list
    )
    expected: dict[int, int] = field(default_factory=dict)

    @property
    def dlq(self) -> str:
        return self.topic + ".dlq"

    @property
    def group(self) -> str:
        return self.topic + "-g"

    def start_member(
        self, options: RunnerOptions = FAST, name: str = ""
    ) -> tuple[GroupRunner, ConsumerMetrics]:
        metrics = ConsumerMetrics(self.group)
        consumer = CheckedConsumer(
            self.bus.member(self.group, self.topic), self.check_commit, self.accepted
        )
        self.members.append(consumer)
        letters = DeadLetters(self.bus.producer(), self.dlq, self.group, timeout=10.0)
        runner = GroupRunner(
            consumer,
            group=self.group,
            writer=self.store,
            dead_letters=letters,
            metrics=metrics,
            options=options,
        )
        thread = threading.Thread(target=runner.run, name=name or None, daemon=True)
        thread.start()
        self.runners.append((runner, thread, metrics))
        return runner, metrics

    def stop_member(self, runner: GroupRunner) -> None:
        for entry in self.runners:
            if entry[0] is runner:
                runner.stop()
                entry[1].join(10)
                assert not entry[1].is_alive()
                self.runners.remove(entry)
                return

    def produce_sessions(self, count: int, chunks: int = 4) -> list[uuid.UUID]:
        ids = []
        for _ in range(count):
            session_id, messages = recording(chunks=chunks)
            ids.append(session_id)
            for message in messages:
                self.bus.append(self.topic, str(session_id).encode(), message)
        self.expected = self.bus.ends(self.topic)
        return ids

    def append(self, key: bytes, value: bytes) -> None:
        self.bus.append(self.topic, key, value)
        self.expected = self.bus.ends(self.topic)

    def dead_lettered(self) -> dict[tuple[int, int], dict[str, bytes]]:
        found = {}
        for message in self.bus.messages(self.dlq):
            headers = dict(message.headers() or [])
            found[int(headers[HEADER_PARTITION]), int(headers[HEADER_OFFSET])] = headers
        return found

    def check_commit(self, offsets: Mapping[int, int]) -> None:
        """Every offset below a commit is stored, kept as evidence or dead-lettered -- at
        commit time -- and a committed offset never goes back."""
        letters = self.dead_lettered()
        stored = set(self.store.chunks.values()) | set(self.store.evidence)
        lost = {
            (partition, offset)
            for (partition, first), headers in letters.items()
            if HEADER_LOST_END in headers
            for offset in range(first, int(headers[HEADER_LOST_END]))
        }
        for partition, end in offsets.items():
            if end < self.last_commit.get(partition, 0):
                self.violations.append(
                    f"partition {partition} rewound from {self.last_commit[partition]} to {end}"
                )
            for offset in range(end):
                key = (partition, offset)
                if key not in stored and key not in letters and key not in lost:
                    self.violations.append(
                        f"partition {partition} committed to {end} before "
                        f"offset {offset} was written"
                    )
                    return

    def accepted(self, offsets: Mapping[int, int]) -> None:
        for partition, end in offsets.items():
            self.last_commit[partition] = max(end, self.last_commit.get(partition, 0))

    def committed(self) -> dict[int, int]:
        return dict(self.last_commit)

    def everything_done(self) -> bool:
        # An empty partition may be committed at 0 or not at all.
        return all(self.last_commit.get(p, 0) == n for p, n in self.expected.items())

    def wait_for(self, condition: Callable[[], bool], what: str = "") -> None:
        wait_for(condition, self.bus.patience, what)


@pytest.fixture(params=["local", pytest.param("kafka", marks=pytest.mark.integration)])
def harness(request: pytest.FixtureRequest) -> Iterator[Harness]:
    if request.param == "local":
        bus: Bus = LocalBus()
    else:
        kafka: Broker = request.getfixturevalue("broker")
        bus = KafkaBus(kafka.bootstrap_servers)
    topic = f"runner.{uuid.uuid4().hex[:10]}"
    bus.create_topic(topic, 3)
    bus.create_topic(topic + ".dlq", 3)
    h = Harness(bus, MemoryStore(), topic)
    yield h
    for runner, thread, _metrics in h.runners:
        runner.stop()
        thread.join(30)
    bus.close()
    assert not h.violations, h.violations


def test_everything_is_written_once_and_committed_after(harness: Harness) -> None:
    ids = harness.produce_sessions(30)
    harness.start_member()
    harness.wait_for(harness.everything_done, what="every offset committed")
    assert len(harness.store.chunks) == 30 * 4
    assert {sid for sid, _ in harness.store.chunks} == set(ids)


def test_housekeeping_is_told_only_the_partitions_written_to_their_end(harness: Harness) -> None:
    """The store marks silent sessions interrupted only where nothing waits unread: a
    session whose chunks are still in Kafka is not silent (issue 32, finding 9)."""
    harness.produce_sessions(12)
    ends = dict(harness.expected)
    harness.store.write_delay_s = 0.05  # a backlog that takes a while
    harness.start_member(dataclasses.replace(FAST, batch_size=4, housekeeping_s=0.01))
    harness.wait_for(harness.everything_done, what="every offset committed")
    harness.wait_for(
        lambda: bool(harness.store.settled) and harness.store.settled[-1][0] == {0, 1, 2},
        what="housekeeping told every partition is read to its end",
    )
    for settled, stored in harness.store.settled:
        for partition in settled:
            assert stored.get(partition, 0) == ends[partition], (settled, stored)
    assert any(settled != {0, 1, 2} for settled, _ in harness.store.settled)


def test_while_the_database_is_away_partitions_are_paused_and_nothing_is_committed(
    harness: Harness,
) -> None:
    harness.store.down = True
    harness.produce_sessions(10)
    _runner, metrics = harness.start_member()
    harness.wait_for(lambda: harness.store.attempts >= 5, what="several attempts")
    assert set(harness.committed().values()) <= {0}  # an empty partition's position at most
    consumer = harness.members[0]
    assert ("pause", (0, 1, 2)) in consumer.calls
    assert metrics.value("sshtrail_write_retries_total") >= 4
    harness.produce_sessions(10)  # arrives while paused: not fetched until resumed
    harness.store.down = False
    harness.wait_for(harness.everything_done, what="every offset committed")
    assert len(harness.store.chunks) == 20 * 4


def test_a_rebalance_during_an_outage_commits_nothing_unwritten(harness: Harness) -> None:
    """The defect of issue 14.2: revoked and assigned again while retrying, with a
    later batch already fetched -- its offsets must not be committed past the
    earlier ones that were never written."""
    harness.produce_sessions(20)
    harness.store.down = True
    harness.start_member(
        RunnerOptions(batch_size=10, batch_wait_s=0.01, retry_initial_s=0.02, retry_max_s=0.05)
    )
    harness.wait_for(lambda: harness.store.attempts >= 2, what="the first batch failing")
    second, _ = harness.start_member()  # joins: everything revoked and shared anew
    harness.wait_for(lambda: harness.store.attempts >= 8, what="retries after the rebalance")
    harness.stop_member(second)  # leaves: the first member gets its partitions back
    first = harness.members[0]
    harness.wait_for(lambda: first.assignment() == {0, 1, 2}, what="the partitions back")
    harness.store.down = False
    harness.wait_for(harness.everything_done, what="every offset committed")
    assert len(harness.store.chunks) == 20 * 4


def test_a_batch_fetched_before_a_partition_left_and_came_back_is_not_committed(
    harness: Harness,
) -> None:
    """Batch N+1 is fetched while N waits on the database; a partition moves to another
    member, which commits it further, and comes back. N+1's messages of that partition
    are stale: committing them would rewind the partition (and, had N's been
    dropped, skip it). Which partition moves is the assignor's choice (cooperative-sticky
    on Kafka): the stuck member commits nothing, so any commit is the other member's."""
    harness.produce_sessions(30)
    harness.store.down_for = {"stuck"}
    options = RunnerOptions(
        batch_size=12, batch_wait_s=0.01, retry_initial_s=0.02, retry_max_s=0.05
    )
    harness.start_member(options, name="stuck")
    harness.wait_for(lambda: harness.store.attempts >= 2, what="the first batch failing")
    other, _ = harness.start_member(options, name="other")
    harness.wait_for(lambda: bool(harness.committed()), what="the other member's commit")
    harness.stop_member(other)  # its partition goes back to the stuck member
    stuck = harness.members[0]
    harness.wait_for(lambda: stuck.assignment() == {0, 1, 2}, what="the partition back")
    harness.store.down_for = set()
    harness.wait_for(harness.everything_done, what="every offset committed")
    assert len(harness.store.chunks) == 30 * 4


def test_a_refused_commit_of_partitions_that_stay_is_made_again() -> None:
    """A cooperative rebalance refuses commits while it runs but leaves most partitions
    where they are: nobody re-reads them, so unless the member commits them again they
    stay uncommitted (lag that never drains) until a new message comes. Local broker
    only: it refuses commits on demand."""
    bus = LocalBus()
    topic = f"runner.{uuid.uuid4().hex[:10]}"
    bus.create_topic(topic, 3)
    bus.create_topic(topic + ".dlq", 3)
    harness = Harness(bus, MemoryStore(), topic)
    harness.produce_sessions(6)
    # Two refusals: the first batch's commit and then, depending on how the 24
    # messages fall into batches, either its retry or the next batch's commit too.
    bus.broker.refuse_commits(2)
    _runner, metrics = harness.start_member()
    try:
        harness.wait_for(harness.everything_done, what="every offset committed again")
        assert metrics.value("sshtrail_commit_failures_total") in (1, 2)
    finally:
        for runner, thread, _metrics in harness.runners:
            runner.stop()
            thread.join(30)
    assert not harness.violations, harness.violations


def test_members_joining_and_leaving_under_load_lose_and_double_nothing(
    harness: Harness,
) -> None:
    harness.produce_sessions(40)
    harness.start_member()
    for _ in range(3):
        harness.produce_sessions(10)
        extra, _ = harness.start_member()
        time.sleep(0.05)
        harness.stop_member(extra)
    harness.wait_for(harness.everything_done, what="every offset committed")
    assert len(harness.store.chunks) == 70 * 4


def test_invalid_messages_go_to_the_dead_letter_topic_with_their_origin(
    harness: Harness,
) -> None:
    harness.produce_sessions(5)
    harness.append(b"junk", b"not a chunk")
    [junk] = [m for m in harness.bus.messages(harness.topic) if m.key() == b"junk"]
    where = (junk.partition() or 0, junk.offset() or 0)
    harness.produce_sessions(5)
    _runner, metrics = harness.start_member()
    harness.wait_for(harness.everything_done, what="every offset committed")
    letters = harness.dead_lettered()
    assert list(letters) == [where]
    assert letters[where][HEADER_ERROR].startswith(b"bad magic")
    assert metrics.value("sshtrail_messages_dead_lettered_total") == 1
    assert len(harness.store.chunks) == 10 * 4


def test_a_burst_of_invalid_messages_stalls_the_member_instead_of_draining_the_topic(
    harness: Harness,
) -> None:
    """A newer gateway's wire format, say: the limit stops the member, loudly."""
    for n in range(30):
        harness.append(b"k", b"ST\x09\x00" + bytes([n]))
    options = RunnerOptions(batch_size=100, batch_wait_s=0.01, dead_letter_max_consecutive=10)
    _runner, metrics = harness.start_member(options)
    harness.wait_for(lambda: metrics.value("sshtrail_consumer_stalled") == 1, what="the stall")
    # Nothing past any message (an empty partition's position, 0, may be committed).
    assert set(harness.committed().values()) <= {0}
    assert harness.dead_lettered() == {}


def test_chunks_the_database_refuses_are_quarantined_and_the_rest_is_stored(
    harness: Harness,
) -> None:
    ids = harness.produce_sessions(8)
    poisoned = ids[3]
    harness.store.refused = {(poisoned, 2)}
    _runner, metrics = harness.start_member()
    harness.wait_for(harness.everything_done, what="every offset committed")
    assert harness.store.quarantined.keys() == {poisoned}
    assert "value too long" in harness.store.quarantined[poisoned]
    stored = set(harness.store.chunks)
    assert (poisoned, 2) not in stored
    assert {(poisoned, s) for s in (0, 1, 3)} <= stored
    assert len(stored) == 8 * 4 - 1
    [letter] = harness.dead_lettered().values()
    assert b"value too long" in letter[HEADER_ERROR]
    assert metrics.value("sshtrail_sessions_quarantined_total") == 1


def test_a_member_reports_lag_while_it_waits_on_the_database(harness: Harness) -> None:
    harness.store.down = True
    harness.produce_sessions(10)
    _runner, metrics = harness.start_member(
        RunnerOptions(
            batch_size=50,
            batch_wait_s=0.01,
            retry_initial_s=0.05,
            retry_max_s=0.1,
            lag_report_s=0.05,
        )
    )

    def lag() -> float:
        return sum(
            metrics.registry.get_sample_value(
                "sshtrail_consumer_lag_messages",
                {"group": harness.group, "topic": harness.topic, "partition": str(p)},
            )
            or 0
            for p in range(3)
        )

    harness.wait_for(lambda: lag() == 40, what="lag gauges while the database is away")
    harness.produce_sessions(5)
    harness.wait_for(lambda: lag() == 60, what="lag gauges that keep moving")
    harness.store.down = False
    harness.wait_for(harness.everything_done)
    harness.wait_for(lambda: lag() == 0, what="lag back to 0")


def test_offsets_deleted_before_the_group_read_them_are_recorded_as_lost(
    harness: Harness,
) -> None:
    first, _ = harness.start_member()
    harness.produce_sessions(6)
    harness.wait_for(harness.everything_done, what="the first sessions committed")
    harness.stop_member(first)
    before = harness.bus.ends(harness.topic)
    harness.produce_sessions(9)  # while no member runs ...
    gone = harness.bus.ends(harness.topic)
    for partition, end in gone.items():  # ... retention deletes them unread
        harness.bus.delete_records(harness.topic, partition, end)
    kept = harness.produce_sessions(3)
    _, metrics = harness.start_member()
    harness.wait_for(harness.everything_done, what="the group past the hole")
    letters = harness.dead_lettered()
    for partition, end in gone.items():
        if end > before[partition]:
            headers = letters[partition, before[partition]]
            assert int(headers[HEADER_LOST_END]) == end
            assert headers[HEADER_ERROR].startswith(b"DATA-LOSS: offsets ")
    lost = sum(end - before[p] for p, end in gone.items())
    assert len(letters) == sum(1 for p, end in gone.items() if end > before[p])
    assert metrics.registry.get_sample_value(
        "sshtrail_offsets_lost_total", {"group": harness.group}
    ) == float(lost)
    assert {sid for sid, _ in harness.store.chunks} >= set(kept)  # what came after is stored


def test_counters_exist_at_zero_before_anything_happens() -> None:
    metrics = ConsumerMetrics("g0")
    for name in (
        "sshtrail_messages_dead_lettered_total",
        "sshtrail_write_retries_total",
        "sshtrail_sessions_quarantined_total",
        "sshtrail_commit_failures_total",
        "sshtrail_offsets_lost_total",
    ):
        assert metrics.registry.get_sample_value(name, {"group": "g0"}) == 0.0


def test_a_member_that_stops_leaves_the_group(harness: Harness) -> None:
    harness.produce_sessions(3)
    runner, _ = harness.start_member()
    harness.wait_for(harness.everything_done)
    harness.stop_member(runner)
    assert harness.members[0].closed


RESTING = RunnerOptions(
    batch_size=50, batch_wait_s=0.01, retry_initial_s=0.01, retry_max_s=0.05, idle_check_s=0.02
)


def resting(runner: GroupRunner, consumer: CheckedConsumer) -> bool:
    """Whether the member rests, its last word to the client a pause."""
    return runner.resting and bool(consumer.calls) and consumer.calls[-1][0] == "pause"


def test_a_caught_up_member_rests_and_wakes_for_what_comes_next(harness: Harness) -> None:
    """The embedded broker's idle spin (issue 17): caught up, the member pauses its
    partitions instead of fetching; a message published later is still written and
    committed, and the member rests again after it."""
    harness.produce_sessions(5)
    runner, _ = harness.start_member(RESTING)
    harness.wait_for(harness.everything_done, what="every offset committed")
    member = harness.members[0]
    harness.wait_for(lambda: resting(runner, member), what="the member resting")
    for round_ in range(3):
        harness.produce_sessions(2)
        harness.wait_for(harness.everything_done, what=f"round {round_} committed")
        harness.wait_for(lambda: resting(runner, member), what="resting again")
    assert len(harness.store.chunks) == 11 * 4


def test_a_member_that_started_before_the_messages_came_reads_them(harness: Harness) -> None:
    """Found by ``up --demo``: a new group, topic empty at assignment, the first session
    arrives later. The partition's start is still being looked up when a poll comes
    back empty; resting then (pausing) restarted the lookup each time, for ever."""
    runner, _ = harness.start_member(RESTING)
    harness.wait_for(lambda: resting(runner, harness.members[0]), what="the member resting")
    harness.produce_sessions(3)
    harness.wait_for(harness.everything_done, what="every offset committed")
    assert len(harness.store.chunks) == 3 * 4


def test_a_rebalance_while_resting_loses_and_doubles_nothing(harness: Harness) -> None:
    harness.produce_sessions(5)
    first, _ = harness.start_member(RESTING)
    harness.wait_for(harness.everything_done, what="every offset committed")
    harness.wait_for(lambda: resting(first, harness.members[0]), what="the member resting")
    second, _ = harness.start_member(RESTING)
    harness.produce_sessions(10)
    harness.wait_for(harness.everything_done, what="shared between two resting members")
    harness.stop_member(second)
    harness.produce_sessions(10)
    harness.wait_for(harness.everything_done, what="back to one member")
    assert len(harness.store.chunks) == 25 * 4


def test_a_member_that_rests_still_pauses_and_retries_while_the_database_is_away(
    harness: Harness,
) -> None:
    harness.produce_sessions(2)
    runner, _ = harness.start_member(RESTING)
    harness.wait_for(harness.everything_done, what="every offset committed")
    harness.wait_for(lambda: resting(runner, harness.members[0]), what="the member resting")
    harness.store.down = True
    attempts = harness.store.attempts
    harness.produce_sessions(3)
    harness.wait_for(lambda: harness.store.attempts >= attempts + 3, what="retries")
    harness.store.down = False
    harness.wait_for(harness.everything_done, what="written after the outage")
    assert len(harness.store.chunks) == 5 * 4


def wait_for(condition: Callable[[], bool], timeout: float = 10, what: str = "") -> None:
    wait_until(condition, timeout, what, every=0.005)


def test_chunks_no_trusted_gateway_signed_are_handed_over_as_evidence_not_written(
    harness: Harness,
) -> None:
    """A forged chunk with a live session's next seq is refused, the real one taken."""
    session_id, [start, *rest] = recording(chunks=3)
    key = str(session_id).encode()
    forger = Ed25519PrivateKey.generate()
    prev = chain_digest(start)
    forged = encode_chunk(session_id, 1, prev, [ev.Output(t=5, data=b"forged")], forger)
    unsigned = encode_chunk(session_id, 1, prev, [ev.Output(t=5, data=b"unsigned")])
    for message in (start, forged, unsigned, *rest):  # the forgeries before the real chunk 1
        harness.append(key, message)
    trusted = Provenance(frozenset({SIGNER.public_key().public_bytes_raw()}))
    _runner, metrics = harness.start_member(dataclasses.replace(FAST, provenance=trusted))
    harness.wait_for(harness.everything_done, what="every offset committed")
    reasons = sorted(harness.store.evidence.values())
    assert len(reasons) == 2
    assert "not a trusted gateway key" in reasons[0]
    assert "unsigned chunk (wire format 1)" in reasons[1]
    assert set(harness.store.chunks) == {(session_id, seq) for seq in range(3)}
    assert metrics.value("sshtrail_chunks_refused_total") == 2
    assert not harness.dead_lettered()
