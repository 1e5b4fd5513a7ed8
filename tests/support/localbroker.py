"""An in-memory Kafka for the fast tier: topics, consumer groups, producers, in one process.

It implements the ports of :mod:`sshtrail.kafka.ports` the way Kafka behaves
where sshtrail depends on it -- keyed messages on murmur2 partitions,
offsets per partition, eager rebalances delivered from inside ``consume``,
fetching from the committed offset after an assignment, commits refused to a
member that no longer owns the partition, pause and seek, delivery reports
served by ``poll`` and ``flush`` -- and lets a test do what a real broker
does not do on demand: go away, come back, refuse a message, turn a
producer fatal. The same tests run against the embedded broker through the
real adapters (``tests/unit/consumer/test_runner.py``).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field

from sshtrail.errors import BrokerError, CommitFailed, MessageTooLarge, QueueFull
from sshtrail.kafka.config import partition_for
from sshtrail.kafka.ports import (
    BrokerEvent,
    Delivered,
    DeliveryError,
    Headers,
    RebalanceListener,
)


@dataclass(frozen=True, slots=True)
class LocalMessage:
    """A stored message; the :class:`~sshtrail.kafka.ports.Message` port."""

    _topic: str
    _partition: int
    _offset: int
    _key: bytes | None
    _value: bytes | None
    _headers: tuple[tuple[str, bytes], ...] = ()
    #: (kind, milliseconds): kind 1 is the producer's create time, 0 "not available".
    _timestamp: tuple[int, int] = field(default_factory=lambda: (1, int(time.time() * 1000)))

    def topic(self) -> str:
        return self._topic

    def partition(self) -> int:
        return self._partition

    def offset(self) -> int:
        return self._offset

    def key(self) -> bytes | None:
        return self._key

    def value(self) -> bytes | None:
        return self._value

    def timestamp(self) -> tuple[int, int]:
        return self._timestamp

    def headers(self) -> list[tuple[str, bytes]] | None:
        return list(self._headers) or None


@dataclass
class _Group:
    members: list[LocalGroupConsumer] = field(default_factory=list)
    committed: dict[tuple[str, int], int] = field(default_factory=dict)
    owner: dict[tuple[str, int], LocalGroupConsumer] = field(default_factory=dict)


class LocalBroker:
    """Topics and groups in memory. Thread-safe; one lock for everything."""

    def __init__(self, max_message_bytes: int = 1 << 20) -> None:
        self.topics: dict[str, list[list[LocalMessage]]] = {}
        self.groups: dict[str, _Group] = {}
        self.max_message_bytes = max_message_bytes
        #: (topic, partition) -> the first offset not yet deleted (retention).
        self.low: dict[tuple[str, int], int] = {}
        self.up = True
        self._changed = threading.Condition()
        #: Called with (group, offsets) before a commit is accepted: tests check invariants.
        self.on_commit: Callable[[str, Mapping[int, int]], None] = lambda group, offsets: None
        self._refusals: list[DeliveryError] = []
        self._commit_refusals = 0

    # -- what a test does ----------------------------------------------------------

    def create_topic(self, name: str, partitions: int = 3) -> None:
        with self._changed:
            self.topics.setdefault(name, [[] for _ in range(partitions)])

    def append(
        self, topic: str, key: bytes | None, value: bytes | None, headers: Headers = ()
    ) -> LocalMessage:
        """Store one message as a producer would have, on the key's partition."""
        with self._changed:
            partitions = self.topics[topic]
            index = partition_for(key, len(partitions)) if key is not None else 0
            log = partitions[index]
            message = LocalMessage(topic, index, len(log), key, value, tuple(headers))
            log.append(message)
            self._changed.notify_all()
            return message

    def messages(self, topic: str) -> list[LocalMessage]:
        with self._changed:
            return [
                m
                for index, partition in enumerate(self.topics.get(topic, []))
                for m in partition[self.low.get((topic, index), 0) :]
            ]

    def delete_records(self, topic: str, partition: int, before: int) -> None:
        """What retention does: the partition's messages below ``before`` are gone."""
        with self._changed:
            key = (topic, partition)
            self.low[key] = max(self.low.get(key, 0), before)

    def committed(self, group: str, topic: str) -> dict[int, int]:
        with self._changed:
            found = self.groups.get(group, _Group()).committed
            return {p: o for (t, p), o in found.items() if t == topic}

    def go_down(self) -> None:
        with self._changed:
            self.up = False

    def come_back(self) -> None:
        with self._changed:
            self.up = True
            self._changed.notify_all()

    def refuse_commits(self, count: int) -> None:
        """The next ``count`` commits are refused as a rebalance in progress would be,
        whoever holds the partitions (a cooperative rebalance moves few of them)."""
        with self._changed:
            self._commit_refusals += count

    def refuse_next(self, error: DeliveryError) -> None:
        """The next message a producer delivers is refused with ``error``."""
        with self._changed:
            self._refusals.append(error)

    def member(self, group: str, topic: str) -> LocalGroupConsumer:
        return LocalGroupConsumer(self, group, topic)

    def producer(self, on_event: Callable[[BrokerEvent], None] | None = None) -> LocalProducer:
        return LocalProducer(self, on_event)

    # -- groups ----------------------------------------------------------------------

    def _join(self, member: LocalGroupConsumer) -> None:
        with self._changed:
            group = self.groups.setdefault(member.group, _Group())
            group.members.append(member)
            self._rebalance(group, member.topic)

    def _leave(self, member: LocalGroupConsumer) -> None:
        with self._changed:
            group = self.groups.get(member.group)
            if group is not None and member in group.members:
                group.members.remove(member)
                self._rebalance(group, member.topic)

    def _rebalance(self, group: _Group, topic: str) -> None:
        """Eager, round robin: everyone gives up everything, then gets its share."""
        for member in group.members:
            member._events.append(("revoke", sorted(member._owned)))
        group.owner = {k: v for k, v in group.owner.items() if k[0] != topic}
        if not group.members:
            return
        count = len(self.topics[topic])
        shares: dict[LocalGroupConsumer, list[int]] = {m: [] for m in group.members}
        for partition in range(count):
            member = group.members[partition % len(group.members)]
            shares[member].append(partition)
            group.owner[topic, partition] = member
        for member, partitions in shares.items():
            member._events.append(("assign", partitions))
        self._changed.notify_all()

    def _commit(self, member: LocalGroupConsumer, offsets: Mapping[int, int]) -> None:
        with self._changed:
            if not self.up:
                raise CommitFailed("commit refused: Local: Broker transport failure")
            group = self.groups[member.group]
            foreign = [p for p in offsets if group.owner.get((member.topic, p)) is not member]
            if foreign or member._events:
                raise CommitFailed(f"commit refused: rebalance in progress ({foreign})")
            if self._commit_refusals:
                self._commit_refusals -= 1
                raise CommitFailed("commit refused: Broker: Group rebalance in progress")
            self.on_commit(member.group, offsets)
            for partition, offset in offsets.items():
                group.committed[member.topic, partition] = offset

    def _wait(self, timeout: float) -> None:
        with self._changed:
            self._changed.wait(timeout)


class LocalGroupConsumer:
    """A member of a group: the :class:`~sshtrail.kafka.ports.GroupConsumer` port."""

    def __init__(self, broker: LocalBroker, group: str, topic: str) -> None:
        self._broker = broker
        self.group = group
        self.topic = topic
        self._listener: RebalanceListener | None = None
        self._owned: set[int] = set()
        self._paused: set[int] = set()
        self._positions: dict[int, int] = {}
        self._events: list[tuple[str, list[int]]] = []
        self.closed = False
        #: Every pause() and resume(), in order (tests look at them).
        self.calls: list[tuple[str, tuple[int, ...]]] = []

    def subscribe(self, listener: RebalanceListener) -> None:
        self._listener = listener
        self._broker._join(self)

    def consume(self, count: int, timeout: float) -> Sequence[LocalMessage]:
        deadline = time.monotonic() + timeout
        while True:
            self._serve_events()
            found = self._fetch(count)
            left = deadline - time.monotonic()
            if found or left <= 0:
                return found
            self._broker._wait(min(left, 0.05))

    def _serve_events(self) -> None:
        broker = self._broker
        while True:
            with broker._changed:
                if not self._events:
                    return
                kind, partitions = self._events.pop(0)
                if kind == "revoke":
                    self._owned.clear()
                    self._paused.clear()
                    self._positions.clear()
                else:
                    self._owned = set(partitions)
                    committed = broker.groups[self.group].committed
                    self._positions = {p: committed.get((self.topic, p), 0) for p in partitions}
            assert self._listener is not None
            if kind == "revoke":
                if partitions:
                    self._listener.revoked(partitions)
            else:
                self._listener.assigned(partitions)

    def _fetch(self, count: int) -> list[LocalMessage]:
        broker = self._broker
        with broker._changed:
            if not broker.up:
                return []
            found: list[LocalMessage] = []
            logs = broker.topics[self.topic]
            readable = sorted(self._owned - self._paused)
            # A share of the batch per partition, as fetches from several partitions are.
            share = max(count // max(len(readable), 1), 1)
            for partition in readable:
                # Below the first offset left: the client starts at it (auto.offset.reset).
                position = max(
                    self._positions[partition], broker.low.get((self.topic, partition), 0)
                )
                taken = logs[partition][position : position + min(share, count - len(found))]
                found.extend(taken)
                self._positions[partition] = position + len(taken)
            return found

    def commit(self, offsets: Mapping[int, int]) -> None:
        self._broker._commit(self, offsets)

    def pause(self, partitions: Collection[int]) -> None:
        self.calls.append(("pause", tuple(sorted(partitions))))
        self._paused.update(p for p in partitions if p in self._owned)

    def resume(self, partitions: Collection[int]) -> None:
        self.calls.append(("resume", tuple(sorted(partitions))))
        self._paused.difference_update(partitions)

    def seek(self, partition: int, offset: int) -> None:
        if partition not in self._owned:
            raise BrokerError(f"cannot seek partition {partition}: not assigned")
        self._positions[partition] = offset

    def assignment(self) -> set[int]:
        return set(self._owned)

    def committed(self, partitions: Collection[int], timeout: float) -> dict[int, int | None]:
        if not self._broker.up:
            raise BrokerError("cannot read committed offsets: Local: Broker transport failure")
        found = self._broker.committed(self.group, self.topic)
        return {p: found.get(p) for p in partitions}

    def watermarks(self, partition: int, fresh: bool = False) -> tuple[int, int] | None:
        low = self._broker.low.get((self.topic, partition), 0)
        return low, len(self._broker.topics[self.topic][partition])

    def close(self) -> None:
        self.closed = True
        self._broker._leave(self)


class LocalProducer:
    """The :class:`~sshtrail.kafka.ports.MessageProducer` port; delivers on poll/flush."""

    def __init__(self, broker: LocalBroker, on_event: Callable[[BrokerEvent], None] | None) -> None:
        self._broker = broker
        self._on_event = on_event or (lambda event: None)
        self._queue: list[tuple[str, bytes | None, bytes | None, Delivered, Headers]] = []
        self._fatal: str | None = None
        self.max_queued = 100_000
        self.produced = 0

    @property
    def fatal(self) -> str | None:
        return self._fatal

    def make_fatal(self, why: str = "Broker: Out of order sequence number") -> None:
        """What librdkafka does on a fatal idempotence error: report it, refuse all."""
        self._fatal = why
        self._on_event(BrokerEvent("fatal", why))

    def produce(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        on_delivery: Delivered,
        headers: Headers = (),
    ) -> None:
        if self._fatal is not None:
            raise BrokerError(f"cannot produce: {self._fatal}", fatal=True)
        if len(value or b"") > self._broker.max_message_bytes:
            raise MessageTooLarge("message refused: Broker: Message size too large")
        if len(self._queue) >= self.max_queued:
            raise QueueFull("the producer's queue is full")
        self._queue.append((topic, key, value, on_delivery, headers))

    def poll(self, timeout: float) -> None:
        self._deliver()
        if not self._queue and timeout:
            time.sleep(min(timeout, 0.01))

    def flush(self, timeout: float) -> int:
        deadline = time.monotonic() + timeout
        self._deliver()
        while self._queue and time.monotonic() < deadline:
            time.sleep(0.01)
            self._deliver()
        return len(self._queue)

    def _deliver(self) -> None:
        broker = self._broker
        if self._fatal is not None:  # librdkafka fails whatever it still held
            queued, self._queue = self._queue, []
            for _topic, _key, _value, on_delivery, _headers in queued:
                on_delivery(DeliveryError("fatal", self._fatal))
            return
        if not broker.up:
            if self._queue:
                self._on_event(BrokerEvent("unreachable", "1/1 brokers are down"))
            return
        while self._queue:
            topic, key, value, on_delivery, headers = self._queue.pop(0)
            with broker._changed:
                refusal = broker._refusals.pop(0) if broker._refusals else None
            if refusal is None:
                broker.append(topic, key, value, headers)
                self.produced += 1
            on_delivery(refusal)
