"""The dead-letter topic: where messages that are not valid chunks are kept, with their origin.

Also the limit on how many may go there (:class:`DeadLetterLimit`): a burst
of invalid messages -- say, chunks of a wire-format version this consumer
does not know, from a newer gateway -- stalls the group loudly instead of
diverting the whole stream to the dead-letter topic while its lag reads 0
(the idea of getsentry/arroyo's ``DlqLimit``).
"""

from __future__ import annotations

import dataclasses
import logging
from collections import deque
from collections.abc import Sequence
from typing import Protocol

from consumer.messages import Rejected
from sshtrail import letters as letter_format
from sshtrail.errors import BrokerError, MessageTooLarge, OffsetsLost
from sshtrail.kafka.ports import DeliveryError, Headers, MessageProducer

log = logging.getLogger(__name__)

#: Header names on a dead letter (docs/operations.md, "Dead letters"), shared with the
#: readers of the letters in :mod:`sshtrail.letters`.
HEADER_TOPIC = letter_format.HEADER_TOPIC
HEADER_PARTITION = letter_format.HEADER_PARTITION
HEADER_OFFSET = letter_format.HEADER_OFFSET
HEADER_ERROR = letter_format.HEADER_ERROR
HEADER_GROUP = letter_format.HEADER_GROUP
#: On a letter too large for the dead-letter topic: the original value's size.
#: The letter then holds only the value's first :data:`TRUNCATED_TO` bytes; the
#: whole message stays at its origin offset for as long as the topic keeps it.
HEADER_TRUNCATED = letter_format.HEADER_TRUNCATED
#: On a record of lost offsets (no value): one past the last offset lost; the
#: first is :data:`HEADER_OFFSET` (:class:`~sshtrail.errors.OffsetsLost`).
HEADER_LOST_END = letter_format.HEADER_LOST_END
TRUNCATED_TO = 64 << 10


class DeadLetterSink(Protocol):
    """Where the runner sends rejected messages before committing past them."""

    def send(self, letters: Sequence[Rejected]) -> int:
        """Publish ``letters`` and wait for the broker's ack; ``BrokerError`` otherwise."""
        ...

    def close(self) -> None: ...


class DeadLetters:
    """Publishes rejected messages, key and value unchanged, and waits for the broker's ack.

    :meth:`send` returns only once every letter is acknowledged, so the
    caller may then commit the offsets past them: nothing is lost in between.
    """

    def __init__(
        self, producer: MessageProducer, topic: str, group: str, timeout: float = 30.0
    ) -> None:
        self.topic = topic
        self._group = group
        self._producer = producer
        self._timeout = timeout

    def send(self, letters: Sequence[Rejected]) -> int:
        """Publish ``letters``; raises :class:`BrokerError` if any is not acknowledged.

        A letter the dead-letter topic refuses as too large is sent again
        truncated (:data:`HEADER_TRUNCATED`): one huge message must not stall
        the group behind it.
        """
        if not letters:
            return 0
        refused: list[tuple[Rejected, DeliveryError]] = []
        for letter in letters:
            log.warning(
                "dead letter: partition %d offset %d: %s",
                letter.partition,
                letter.offset,
                letter.error.reason,
            )
            self._produce(letter, refused)
        self._flush()
        # A refused batch may hold small letters beside the large one: each again
        # on its own, and only what is then still too large, truncated.
        for letter, refusal in refused:
            final = self._resend(letter) if refusal.code == "too-large" else refusal
            if final is not None:
                raise BrokerError(f"dead letters refused by {self.topic}: {final}")
        return len(letters)

    def _resend(self, letter: Rejected) -> DeliveryError | None:
        """Send a letter refused as too large on its own, and truncated if it still is."""
        refusal = self._deliver_alone(letter)
        if refusal is None or refusal.code != "too-large":
            return refusal
        log.warning(
            "dead letter: partition %d offset %d is too large for %s; sent truncated to %d bytes",
            letter.partition,
            letter.offset,
            self.topic,
            TRUNCATED_TO,
        )
        return self._deliver_alone(_truncate(letter))

    def _deliver_alone(self, letter: Rejected) -> DeliveryError | None:
        """Publish one letter and wait for it; the broker's refusal, if any."""
        refused: list[tuple[Rejected, DeliveryError]] = []
        self._produce(letter, refused)
        self._flush()
        return refused[0][1] if refused else None

    def _produce(self, letter: Rejected, refused: list[tuple[Rejected, DeliveryError]]) -> None:
        """Queue ``letter``; a refusal (by the client or the broker) lands in ``refused``."""

        def delivered(error: DeliveryError | None) -> None:
            if error is not None:
                refused.append((letter, error))

        headers: Headers = [
            (HEADER_TOPIC, letter.topic.encode()),
            (HEADER_PARTITION, str(letter.partition).encode()),
            (HEADER_OFFSET, str(letter.offset).encode()),
            (HEADER_ERROR, str(letter.error).encode()),
            (HEADER_GROUP, self._group.encode()),
            *letter.headers,
        ]
        try:
            self._producer.produce(self.topic, letter.key, letter.value, delivered, headers)
        except MessageTooLarge as exc:
            refused.append((letter, DeliveryError("too-large", str(exc))))
        except BrokerError as exc:
            raise BrokerError(f"cannot queue a dead letter: {exc}") from None

    def _flush(self) -> None:
        if self._producer.flush(self._timeout) > 0:
            raise BrokerError(
                f"dead letters not acknowledged by {self.topic} in {self._timeout:.0f}s"
            )

    def close(self) -> None:
        self._producer.flush(10)


def lost_letter(topic: str, lost: OffsetsLost) -> Rejected:
    """The dead letter recording that ``lost`` offsets of ``topic`` were never read."""
    partition, first, end = lost.span
    return Rejected(topic, partition, first, None, None, lost, ((HEADER_LOST_END, b"%d" % end),))


def _truncate(letter: Rejected) -> Rejected:
    size = len(letter.value or b"")
    return dataclasses.replace(
        letter,
        value=(letter.value or b"")[:TRUNCATED_TO],
        headers=(*letter.headers, (HEADER_TRUNCATED, str(size).encode())),
    )


class _Window:
    """The last ``size`` messages of a partition as runs of (valid?, count)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.runs: deque[list[int]] = deque()  # [valid 0/1, count]
        self.total = 0
        self.bad = 0
        self.consecutive_bad = 0

    def copy(self) -> _Window:
        twin = _Window(self.size)
        twin.runs = deque([run[0], run[1]] for run in self.runs)
        twin.total, twin.bad, twin.consecutive_bad = self.total, self.bad, self.consecutive_bad
        return twin

    def add(self, valid: bool, count: int = 1) -> None:
        if self.runs and self.runs[-1][0] == valid:
            self.runs[-1][1] += count
        else:
            self.runs.append([int(valid), count])
        self.total += count
        self.bad += 0 if valid else count
        self.consecutive_bad = 0 if valid else self.consecutive_bad + count
        while self.total > self.size:
            first = self.runs[0]
            drop = min(first[1], self.total - self.size)
            first[1] -= drop
            self.total -= drop
            self.bad -= 0 if first[0] else drop
            if not first[1]:
                self.runs.popleft()


class DeadLetterLimit:
    """Whether a partition sends too much to the dead-letter topic to carry on.

    Exceeded when more than ``max_consecutive`` messages in a row of one
    partition were invalid, or when more than ``max_ratio`` of its last
    ``window`` messages were (once at least ``window // 10`` were seen). 0
    turns a rule off.
    """

    def __init__(self, max_consecutive: int, max_ratio: float, window: int = 1000) -> None:
        self._max_consecutive = max_consecutive
        self._max_ratio = max_ratio
        self._window = window
        self._partitions: dict[int, _Window] = {}

    def check(self, valid: dict[int, list[int]], invalid: dict[int, list[int]]) -> str | None:
        """Count a batch (offsets per partition, valid and invalid); why it is too
        much, or None. The batch is counted only when it is within the limit."""
        counted: dict[int, _Window] = {}
        for partition in sorted(valid.keys() | invalid.keys()):
            window = self._partitions.get(partition, _Window(self._window)).copy()
            bad = set(invalid.get(partition, []))
            if not bad:
                window.add(True, len(valid.get(partition, [])))
            else:
                for offset in sorted(bad | set(valid.get(partition, []))):
                    window.add(offset not in bad)
                    problem = self._exceeded(partition, window)
                    if problem:
                        return problem
            counted[partition] = window
        self._partitions.update(counted)
        return None

    def _exceeded(self, partition: int, window: _Window) -> str | None:
        if self._max_consecutive and window.consecutive_bad > self._max_consecutive:
            return (
                f"partition {partition}: more than {self._max_consecutive} invalid messages "
                "in a row"
            )
        if (
            self._max_ratio
            and window.total >= self._window // 10
            and window.bad > self._max_ratio * window.total
        ):
            return (
                f"partition {partition}: {window.bad} of its last {window.total} messages were "
                f"invalid (limit {self._max_ratio:.0%})"
            )
        return None

    def forget(self, partitions: list[int]) -> None:
        """Partitions revoked: their counts start afresh with the next owner."""
        for partition in partitions:
            self._partitions.pop(partition, None)
