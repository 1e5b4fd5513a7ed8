"""The dead-letter topic: where messages that are not valid chunks are kept, with their origin."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence

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
        self._producer = Producer(
            client_config(
                settings,
                **{
                    "enable.idempotence": True,
                    "acks": "all",
                    "linger.ms": 5,
                    # Whatever the sessions topic took must fit; the broker has the last word.
                    "message.max.bytes": 1_000_000_000,
                },
            )
        )

    def send(self, letters: Sequence[Rejected], timeout: float = 30.0) -> int:
        """Publish ``letters``; raises :class:`BrokerError` if any is not acknowledged.

        A letter the dead-letter topic refuses as too large is sent again
        truncated (:data:`HEADER_TRUNCATED`): one huge message must not stall
        the group behind it.
        """
        if not letters:
            return 0
        errors: list[tuple[Rejected, KafkaError]] = []
        for letter in letters:
            log.warning(
                "dead letter: partition %d offset %d: %s",
                letter.partition,
                letter.offset,
                letter.error.reason,
            )
            self._produce(letter, errors)
        self._flush(timeout)
        # A refused batch may hold small letters beside the large one: each again
        # on its own, and only what is then still too large, truncated.
        for letter, refusal in errors:
            final = self._resend(letter, timeout) if _too_large(refusal) else refusal
            if final is not None:
                raise BrokerError(f"dead letters refused by {self.topic}: {final}")
        return len(letters)

    def _resend(self, letter: Rejected, timeout: float) -> KafkaError | None:
        """Send a letter refused as too large on its own, and truncated if it still is."""
        refusal = self._deliver_alone(letter, timeout)
        if refusal is None or not _too_large(refusal):
            return refusal
        log.warning(
            "dead letter: partition %d offset %d is too large for %s; sent truncated to %d bytes",
            letter.partition,
            letter.offset,
            self.topic,
            TRUNCATED_TO,
        )
        return self._deliver_alone(_truncate(letter), timeout)

    def _deliver_alone(self, letter: Rejected, timeout: float) -> KafkaError | None:
        """Publish one letter and wait for it; the broker's refusal, if any."""
        errors: list[tuple[Rejected, KafkaError]] = []
        self._produce(letter, errors)
        self._flush(timeout)
        return errors[0][1] if errors else None

    def _produce(self, letter: Rejected, errors: list[tuple[Rejected, KafkaError]]) -> None:
        """Queue ``letter``; a refusal (by librdkafka or the broker) is added to ``errors``."""

        def delivered(error: KafkaError | None, _message: Message) -> None:
            if error is not None:
                errors.append((letter, error))

        headers: list[tuple[str, str | bytes | None]] = [
            (HEADER_TOPIC, letter.topic.encode()),
            (HEADER_PARTITION, str(letter.partition).encode()),
            (HEADER_OFFSET, str(letter.offset).encode()),
            (HEADER_ERROR, str(letter.error).encode()),
            (HEADER_GROUP, self._group.encode()),
            *letter.headers,
        ]
        try:
            self._producer.produce(
                self.topic, letter.value, letter.key, headers=headers, on_delivery=delivered
            )
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.MSG_SIZE_TOO_LARGE:
                raise BrokerError(f"cannot queue a dead letter: {exc}") from None
            errors.append((letter, exc.args[0]))
        except BufferError as exc:
            raise BrokerError(f"cannot queue a dead letter: {exc}") from None

    def _flush(self, timeout: float) -> None:
        if self._producer.flush(timeout) > 0:
            raise BrokerError(f"dead letters not acknowledged by {self.topic} in {timeout:.0f}s")

    def close(self) -> None:
        self._producer.flush(10)


def _too_large(error: KafkaError) -> bool:
    return bool(error.code() == KafkaError.MSG_SIZE_TOO_LARGE)


def _truncate(letter: Rejected) -> Rejected:
    size = len(letter.value or b"")
    return dataclasses.replace(
        letter,
        value=(letter.value or b"")[:TRUNCATED_TO],
        headers=(*letter.headers, (HEADER_TRUNCATED, str(size).encode())),
    )
