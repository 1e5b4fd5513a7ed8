"""A steady load of recordings on a topic, and how long a group's consumption pauses.

Both the rebalance tests and ``bench/rebalance.py`` use them: :class:`SteadyLoad`
publishes whole sessions at a fixed rate from a thread, :class:`ProgressWatch`
reads the group's committed offsets and the log ends every ``every`` seconds
and keeps, per partition, how long it waited with messages to read and no
commit moving. A rebalance shows as such a wait; so does a member that died.
"""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass, field

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

from tests.support.recordings import recording


class SteadyLoad:
    """``rate`` chunks a second of closed sessions (``chunks`` each), keyed by session id."""

    def __init__(self, servers: str, topic: str, rate: float = 100, chunks: int = 5) -> None:
        self.topic, self.rate, self.chunks = topic, rate, chunks
        self.sessions: set[uuid.UUID] = set()
        self.produced = 0
        self._producer = Producer(
            {
                "bootstrap.servers": servers,
                "enable.idempotence": True,
                "acks": "all",
                "linger.ms": 5,
                "partitioner": "murmur2_random",
            }
        )
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="steady-load", daemon=True)

    def start(self) -> SteadyLoad:
        self._thread.start()
        return self

    def stop(self) -> int:
        """Stop publishing, wait for every acknowledgement; returns the chunks published."""
        self._stop.set()
        self._thread.join(30)
        assert self._producer.flush(60) == 0, "chunks of the load were not acknowledged"
        return self.produced

    def _run(self) -> None:
        started = time.monotonic()
        while not self._stop.is_set():
            session_id, messages = recording(self.chunks, payload=200, text=True)
            key = str(session_id).encode()
            for message in messages:
                while True:
                    try:
                        self._producer.produce(self.topic, message, key)
                        break
                    except BufferError:
                        self._producer.poll(0.05)
                self.produced += 1
            self.sessions.add(session_id)
            self._producer.poll(0)
            # Keep the rate: sleep until this many chunks were due.
            due = started + self.produced / self.rate
            self._stop.wait(max(0.0, due - time.monotonic()))


@dataclass
class _Partition:
    committed: int = -1
    waiting_since: float | None = None  # with lag and no commit moving since then
    pauses: list[tuple[float, float]] = field(default_factory=list)  # (start, end)


class ProgressWatch:
    """Per partition of ``topic``: intervals with lag during which ``group`` committed nothing."""

    def __init__(self, servers: str, group: str, topic: str, every: float = 0.1) -> None:
        self.group, self.topic, self.every = group, topic, every
        self._admin = AdminClient({"bootstrap.servers": servers, "log_level": 2})
        self._reader = Consumer(
            {"bootstrap.servers": servers, "group.id": group, "log_level": 2}
        )  # never subscribes: it only asks for committed offsets and log ends
        meta = self._admin.list_topics(topic, timeout=10).topics[topic]
        self._tps = [TopicPartition(topic, p) for p in sorted(meta.partitions)]
        self._state = {tp.partition: _Partition() for tp in self._tps}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="progress-watch", daemon=True)

    def start(self) -> ProgressWatch:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)
        self._reader.close()

    def longest_pause(self, since: float, until: float | None = None) -> float:
        """The longest wait of any partition overlapping ``[since, until]`` (monotonic),
        a wait still open counted up to now."""
        now = time.monotonic()
        end = until if until is not None else now
        longest = 0.0
        with self._lock:
            for state in self._state.values():
                spans = list(state.pauses)
                if state.waiting_since is not None:
                    spans.append((state.waiting_since, now))
                for start, stop in spans:
                    if stop >= since and start <= end:
                        longest = max(longest, stop - start)
        return longest

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            try:
                committed = self._reader.committed(self._tps, timeout=2)
                ends = {
                    tp.partition: self._reader.get_watermark_offsets(tp, timeout=2)[1]
                    for tp in self._tps
                }
            except KafkaException:  # a broker away or busy: this reading is skipped
                continue
            now = time.monotonic()
            with self._lock:
                for tp in committed:
                    self._observe(self._state[tp.partition], tp.offset, ends[tp.partition], now)

    @staticmethod
    def _observe(state: _Partition, committed: int, end: int, now: float) -> None:
        moved = committed > state.committed
        state.committed = max(state.committed, committed)
        waiting = end > max(committed, 0)
        if state.waiting_since is not None and (moved or not waiting):
            state.pauses.append((state.waiting_since, now))
            state.waiting_since = None
        if waiting and state.waiting_since is None:
            state.waiting_since = now
