"""Reading a whole topic back in a test: every message, to each partition's end."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

from confluent_kafka import Consumer, TopicPartition


def every_message(servers: str, topic: str, timeout: float = 30.0) -> list[tuple[bytes, bytes]]:
    """Every message on ``topic`` when called, copies included: key and value."""
    reader = Consumer({"bootstrap.servers": servers, "group.id": uuid.uuid4().hex})
    try:
        partitions = reader.list_topics(topic, timeout=15).topics[topic].partitions
        marks = {p: reader.get_watermark_offsets(TopicPartition(topic, p), 15) for p in partitions}
        reader.assign([TopicPartition(topic, p, low) for p, (low, _) in marks.items()])
        left = {p for p, (low, high) in marks.items() if low < high}
        found: list[tuple[bytes, bytes]] = []
        deadline = time.monotonic() + timeout
        while left and time.monotonic() < deadline:
            for message in reader.consume(100, 0.5):
                partition, offset = message.partition(), message.offset()
                if message.error() is not None or partition is None or offset is None:
                    continue
                if offset + 1 >= marks[partition][1]:
                    left.discard(partition)
                found.append((message.key() or b"", message.value() or b""))
        assert not left, f"{topic} was not read to its end within {timeout} s"
        return found
    finally:
        reader.close()


def json_documents(servers: str, topic: str) -> list[dict[str, Any]]:
    """The JSON objects on ``topic``; what is not one (a test's garbage) is left out."""
    documents = []
    for _key, value in every_message(servers, topic):
        try:
            document = json.loads(value)
        except ValueError:
            continue
        if isinstance(document, dict):
            documents.append(document)
    return documents
