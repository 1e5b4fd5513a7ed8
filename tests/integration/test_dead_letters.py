"""The dead-letter publisher against the real broker: origin kept, huge letters truncated."""

from __future__ import annotations

import os
import uuid
from typing import cast

import pytest
from confluent_kafka import Message
from confluent_kafka.admin import AdminClient, NewTopic

from consumer.deadletter import HEADER_TRUNCATED, TRUNCATED_TO
from consumer.messages import Rejected
from consumer.service import dead_letters
from sshtrail.errors import WireError
from sshtrail.settings import load_settings
from tests.support.consumers import read_all
from tests.support.kafka import Broker

pytestmark = pytest.mark.integration


def test_a_letter_too_large_for_the_dlq_is_sent_truncated_and_says_so(
    broker: Broker,
) -> None:
    topic = f"test.small-dlq.{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": broker.bootstrap_servers})
    small = NewTopic(topic, 1, 1, config={"max.message.bytes": "100000"})
    for future in admin.create_topics([small]).values():
        future.result(15)
    settings = load_settings(
        environ={
            "SSHTRAIL_KAFKA__BOOTSTRAP_SERVERS": broker.bootstrap_servers,
            "SSHTRAIL_KAFKA__DLQ_TOPIC": topic,
        }
    )
    huge, fine = os.urandom(500_000), os.urandom(1_000)
    letters = dead_letters(settings, "g1")
    try:
        sent = letters.send(
            [
                Rejected("sessions", 2, 7, b"k1", huge, WireError("bad magic")),
                Rejected("sessions", 2, 8, b"k2", fine, WireError("bad magic")),
            ]
        )
    finally:
        letters.close()
    assert sent == 2
    letters_read = cast(list[tuple[int, int, Message]], read_all(broker.bootstrap_servers, topic))
    found = {m.key(): m for _, _, m in letters_read}
    big = found[b"k1"]
    headers = dict(big.headers() or [])
    assert big.value() == huge[:TRUNCATED_TO]
    assert headers[HEADER_TRUNCATED] == b"500000"
    assert headers["sshtrail.origin.offset"] == b"7"
    assert found[b"k2"].value() == fine
    assert HEADER_TRUNCATED not in dict(found[b"k2"].headers() or [])
