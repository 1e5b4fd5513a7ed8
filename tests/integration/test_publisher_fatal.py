"""A fatal producer error, as librdkafka reports it (through ``error_cb`` only,
confluent-kafka-python #655), against the real broker: the gateway's publisher
replaces its producer and republishes from the spool; every chunk arrives.

The embedded broker cannot be made to fence an idempotent producer, so the
fatal error is injected at the error callback of the real ``KafkaProducer``
while chunks are in flight; everything else is librdkafka and the broker."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from confluent_kafka import KafkaError

from producer.publisher import Publisher, kafka_producers
from producer.spool import Spool
from sshtrail.kafka.adapters import KafkaProducer
from sshtrail.kafka.ports import BrokerEvent
from sshtrail.settings import load_settings
from tests.support.consumers import create_topics, read_all, wait_for
from tests.support.kafka import Broker

pytestmark = pytest.mark.integration


def test_a_fatal_error_replaces_the_producer_and_loses_nothing(
    tmp_path: Path, broker: Broker
) -> None:
    topic = f"fatal.{uuid.uuid4().hex[:10]}"
    create_topics(broker.bootstrap_servers, topic, partitions=1)
    settings = load_settings(
        environ={
            "SSHTRAIL_KAFKA__BOOTSTRAP_SERVERS": broker.bootstrap_servers,
            "SSHTRAIL_KAFKA__TOPIC": topic,
        }
    )
    made: list[KafkaProducer] = []
    real = kafka_producers(settings)

    def make(on_event: Callable[[BrokerEvent], None]) -> KafkaProducer:
        producer = real(on_event)
        assert isinstance(producer, KafkaProducer)
        made.append(producer)
        return producer

    spool = Spool(tmp_path / "spool", 1 << 20, 0.01)
    spool.open()
    publisher = Publisher(spool, topic, make)
    publisher.start()
    try:
        keys = [f"session-{n % 3}".encode() for n in range(200)]
        for n, key in enumerate(keys[:100]):
            spool.append(key, b"chunk %d" % n)
        wait_for(lambda: bool(made), what="a producer")
        made[0]._error(KafkaError(KafkaError._FATAL, "injected: producer fenced", fatal=True))
        for n, key in enumerate(keys[100:], start=100):
            spool.append(key, b"chunk %d" % n)
        wait_for(lambda: spool.pending == 0, timeout=60, what="every chunk acknowledged")
        assert publisher.renewals == 1
        assert len(made) == 2
        assert made[0].fatal == "injected: producer fenced"
    finally:
        publisher.stop(10)
        spool.close()
    values = {message.value() for _p, _o, message in read_all(broker.bootstrap_servers, topic)}  # type: ignore[attr-defined]
    assert values == {b"chunk %d" % n for n in range(200)}  # nothing lost; doubles allowed
