"""The dead-letter topic: where messages that are not valid chunks are kept, with their origin."""

from __future__ import annotations

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
        }))  # fmt: skip

    def send(self, letters: Sequence[Rejected], timeout: float = 30.0) -> int:
        """Publish ``letters``; raises :class:`BrokerError` if any is not acknowledged."""
        if not letters:
            return 0
        failures: list[str] = []

        def delivered(error: KafkaError | None, _message: Message) -> None:
            if error is not None:
                failures.append(str(error))

        for letter in letters:
            headers: list[tuple[str, str | bytes | None]] = [
                (HEADER_TOPIC, letter.topic.encode()),
                (HEADER_PARTITION, str(letter.partition).encode()),
                (HEADER_OFFSET, str(letter.offset).encode()),
                (HEADER_ERROR, str(letter.error).encode()),
                (HEADER_GROUP, self._group.encode()),
            ]
            try:
                self._producer.produce(self.topic, letter.value, letter.key,
                                       headers=headers, on_delivery=delivered)  # fmt: skip
            except (KafkaException, BufferError) as exc:
                raise BrokerError(f"cannot queue a dead letter: {exc}") from None
            log.warning("dead letter: partition %d offset %d: %s",
                        letter.partition, letter.offset, letter.error.reason)  # fmt: skip
        if self._producer.flush(timeout) > 0:
            raise BrokerError(f"dead letters not acknowledged by {self.topic} in {timeout:.0f}s")
        if failures:
            raise BrokerError(f"dead letters refused by {self.topic}: {failures[0]}")
        return len(letters)

    def close(self) -> None:
        self._producer.flush(10)
