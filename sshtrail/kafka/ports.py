"""What sshtrail uses of a Kafka client, as narrow protocols.

The consumer groups, the dead-letter sender, the gateway's publisher and the
admin commands depend on these, not on confluent-kafka: the adapters in
:mod:`sshtrail.kafka.adapters` implement them on librdkafka and translate its
errors into :mod:`sshtrail.errors` once; ``tests/support/localbroker.py``
implements them in memory, so what the runner and the publisher promise is
tested in milliseconds -- and the same tests run against the embedded broker.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

#: Headers of a message, in order, as (name, value).
Headers = Sequence[tuple[str, bytes]]


class Message(Protocol):
    """One message read from a topic (``confluent_kafka.Message`` is one)."""

    def topic(self) -> str | None: ...
    def partition(self) -> int | None: ...
    def offset(self) -> int | None: ...
    def key(self) -> bytes | None: ...
    def value(self) -> bytes | None: ...
    def timestamp(self) -> tuple[int, int]: ...
    def headers(self) -> Any:
        """The message's headers: (name, value) pairs, or None."""
        ...


class RebalanceListener(Protocol):
    """Told by :meth:`GroupConsumer.consume` when the member's partitions change.

    Both are called from inside ``consume`` on the caller's thread, before the
    messages of the new assignment are returned.
    """

    def assigned(self, partitions: list[int]) -> None:
        """These partitions are now this member's (their fetching starts at the
        group's committed offset)."""

    def revoked(self, partitions: list[int]) -> None:
        """These partitions are no longer this member's (given up in a rebalance, or
        lost); nothing more may be committed for them."""


class GroupConsumer(Protocol):
    """A member of a consumer group on one topic, committing offsets by hand."""

    topic: str

    def subscribe(self, listener: RebalanceListener) -> None: ...

    def consume(self, count: int, timeout: float) -> Sequence[Message]:
        """Up to ``count`` messages within ``timeout`` s. Raises
        :class:`~sshtrail.errors.BrokerError` with ``fatal`` set when the client is
        unusable; transient errors are reported to the adapter's ``on_error``."""
        ...

    def commit(self, offsets: Mapping[int, int]) -> None:
        """Commit ``partition: next offset`` synchronously; raises
        :class:`~sshtrail.errors.CommitFailed` if the broker refuses."""
        ...

    def pause(self, partitions: Collection[int]) -> None: ...
    def resume(self, partitions: Collection[int]) -> None: ...
    def seek(self, partition: int, offset: int) -> None: ...
    def assignment(self) -> set[int]: ...

    def committed(self, partitions: Collection[int], timeout: float) -> dict[int, int | None]:
        """The group's committed offset of each partition; None where it has none."""
        ...

    def watermarks(self, partition: int, fresh: bool = False) -> tuple[int, int] | None:
        """(earliest, log-end) offset as last seen by the client -- or, ``fresh``, as
        the broker says now (a paused partition is not fetched, so what the client
        saw goes stale); None if unknown."""
        ...

    def close(self) -> None:
        """Leave the group (its partitions move at once) and release the client."""
        ...


@dataclass(frozen=True, slots=True)
class DeliveryError:
    """Why the broker (or the client) did not take a message."""

    code: Literal["too-large", "fatal", "failed"]
    detail: str

    def __str__(self) -> str:
        return self.detail


#: Called once per produced message, from :meth:`MessageProducer.poll` or ``flush``.
Delivered = Callable[[DeliveryError | None], None]


@dataclass(frozen=True, slots=True)
class BrokerEvent:
    """Something the client noticed outside any one message."""

    kind: Literal["unreachable", "fatal", "warning"]
    detail: str


class MessageProducer(Protocol):
    """An idempotent producer: each message's fate arrives through its callback."""

    def produce(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        on_delivery: Delivered,
        headers: Headers = (),
    ) -> None:
        """Queue one message. Raises :class:`~sshtrail.errors.QueueFull` when the
        local queue is full (poll, then try again),
        :class:`~sshtrail.errors.MessageTooLarge` when the client refuses its size,
        and :class:`~sshtrail.errors.BrokerError` when the producer is unusable."""
        ...

    def poll(self, timeout: float) -> None:
        """Serve delivery reports and events for up to ``timeout`` s."""
        ...

    def flush(self, timeout: float) -> int:
        """Wait for every queued message; returns how many are still unacknowledged."""
        ...

    @property
    def fatal(self) -> str | None:
        """Set once the producer hit a fatal error: replace it."""
        ...


class TopicReader(Protocol):
    """Reads partitions it assigns itself, in no group, committing nothing."""

    def partitions(self, topic: str) -> list[int]:
        """The topic's partitions; :class:`~sshtrail.errors.BrokerError` if it does
        not exist."""
        ...

    def watermarks(self, topic: str, partition: int) -> tuple[int, int]:
        """(earliest, log-end) offset, asked of the broker."""
        ...

    def offset_at(self, topic: str, partition: int, millis: int) -> int | None:
        """The first offset whose timestamp is at or after ``millis``; None if none."""
        ...

    def assign(self, topic: str, positions: Mapping[int, int]) -> None: ...
    def consume(self, count: int, timeout: float) -> Sequence[Message]: ...
    def close(self) -> None: ...


#: Reports a transient client error (the client retries it by itself).
ErrorSink = Callable[[str], None]
