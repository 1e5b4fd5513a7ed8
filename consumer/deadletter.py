"""The dead-letter topic: where messages that are not valid chunks are kept, with their origin."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Sequence

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from consumer.messages import Rejected
from sshtrail.errors import BrokerError
from sshtrail.kafka import client_config
from sshtrail.settings import Settings

log = logging.getLogger(__name__)

#: Header names on a dead letter (docs/operations.md, "Dead letters").
HEADER_TOPIC = "sshtrail.origin.topic"
HEADER_PARTITION = "sshtrail.origin.partition"
HEADER_OFFSET = "sshtrail.origin.offset"
HEADER_ERROR = "sshtrail.error"
HEADER_GROUP = "sshtrail.group"
#: On a letter too large for the dead-letter topic: the original value's size.
#: The letter then holds only the value's first :data:`TRUNCATED_TO` bytes; the
#: whole message stays at its origin offset for as long as the topic keeps it.
HEADER_TRUNCATED = "sshtrail.truncated"
TRUNCATED_TO = 64 << 10


class DeadLetters:
    """Publishes rejected messages, key and value unchanged, and waits for the broker's ack.

    :meth:`send` returns only once every letter is acknowledged, so the
    caller may then commit the offsets past them: nothing is lost in between.
    """

    def __init__(self, settings: Settings, group: str) -> None:
        self.topic = settings.kafka.dlq_topic
        self._group = group
        self._producer = Producer(client_config(settings, **{
            "enable.idempotence": True, "acks": "all", "linger.ms": 5,
            # Whatever the sessions topic took must fit; the broker has the last word.
            "message.max.bytes": 1_000_000_000,
        }))  # fmt: skip

    def send(self, letters: Sequence[Rejected], timeout: float = 30.0) -> int:
        """Publish ``letters``; raises :class:`BrokerError` if any is not acknowledged.

        A letter the dead-letter topic refuses as too large is sent again
        truncated (:data:`HEADER_TRUNCATED`): one huge message must not stall
        the group behind it.
        """
        if not letters:
            return 0
        failures: list[str] = []
        too_large: list[Rejected] = []

        def delivery(letter: Rejected) -> Callable[[KafkaError | None, Message], None]:
            # Appends to the list `too_large` names when it runs (rebound per round).
            def delivered(error: KafkaError | None, _message: Message) -> None:
                if error is None:
                    return
                if error.code() == KafkaError.MSG_SIZE_TOO_LARGE and not _truncated(letter):
                    too_large.append(letter)
                else:
                    failures.append(str(error))

            return delivered

        for letter in letters:
            log.warning("dead letter: partition %d offset %d: %s",
                        letter.partition, letter.offset, letter.error.reason)  # fmt: skip
            self._produce(letter, delivery(letter))
        self._flush(timeout)
        # A refused batch may hold small letters beside the large one: each again
        # on its own, and only what is really too large truncated.
        retry, too_large = too_large, []
        for letter in retry:
            self._produce(letter, delivery(letter))
            self._flush(timeout)
        for letter in too_large:
            log.warning("dead letter: partition %d offset %d is too large for %s; sent "
                        "truncated to %d bytes", letter.partition, letter.offset, self.topic,
                        TRUNCATED_TO)  # fmt: skip
            shortened = _truncate(letter)
            self._produce(shortened, delivery(shortened))
            self._flush(timeout)
        if failures:
            raise BrokerError(f"dead letters refused by {self.topic}: {failures[0]}")
        return len(letters)

    def _produce(
        self, letter: Rejected, delivered: Callable[[KafkaError | None, Message], None]
    ) -> None:
        headers: list[tuple[str, str | bytes | None]] = [
            (HEADER_TOPIC, letter.topic.encode()),
            (HEADER_PARTITION, str(letter.partition).encode()),
            (HEADER_OFFSET, str(letter.offset).encode()),
            (HEADER_ERROR, str(letter.error).encode()),
            (HEADER_GROUP, self._group.encode()),
            *letter.headers,
        ]
        try:
            self._producer.produce(self.topic, letter.value, letter.key,
                                   headers=headers, on_delivery=delivered)  # fmt: skip
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.MSG_SIZE_TOO_LARGE or _truncated(letter):
                raise BrokerError(f"cannot queue a dead letter: {exc}") from None
            self._produce(_truncate(letter), delivered)
        except BufferError as exc:
            raise BrokerError(f"cannot queue a dead letter: {exc}") from None

    def _flush(self, timeout: float) -> None:
        if self._producer.flush(timeout) > 0:
            raise BrokerError(f"dead letters not acknowledged by {self.topic} in {timeout:.0f}s")

    def close(self) -> None:
        self._producer.flush(10)


def _truncated(letter: Rejected) -> bool:
    return any(name == HEADER_TRUNCATED for name, _ in letter.headers)


def _truncate(letter: Rejected) -> Rejected:
    size = len(letter.value or b"")
    return dataclasses.replace(
        letter,
        value=(letter.value or b"")[:TRUNCATED_TO],
        headers=(*letter.headers, (HEADER_TRUNCATED, str(size).encode())),
    )
