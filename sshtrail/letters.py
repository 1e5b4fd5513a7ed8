"""The dead letters' headers, and the chunks a store group dead-lettered, read back.

A dead letter keeps the message's key and value and names its origin in
headers (docs/operations.md, "Dead letters"); :mod:`consumer.deadletter`
writes them. A session the store quarantined lacks exactly the chunks its
database refused, and those went to the dead-letter topic, sent by the store
group, where a writer of the database cannot put any (Kafka ACLs): so
``verify --cross-check`` holds a quarantined session's missing chunks to
:class:`StoreLetters`.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection

from sshtrail.crosscheck import Refused
from sshtrail.errors import TopicMissing, WireError
from sshtrail.kafka.adapters import topic_reader
from sshtrail.kafka.reading import whole_topic
from sshtrail.settings import Settings
from sshtrail.wire import decode_chunk

#: Header names on a dead letter.
HEADER_TOPIC = "sshtrail.origin.topic"
HEADER_PARTITION = "sshtrail.origin.partition"
HEADER_OFFSET = "sshtrail.origin.offset"
HEADER_ERROR = "sshtrail.error"
HEADER_GROUP = "sshtrail.group"
#: On a letter too large for the dead-letter topic: the original value's size.
HEADER_TRUNCATED = "sshtrail.truncated"
#: On a record of lost offsets (no value): one past the last offset lost.
HEADER_LOST_END = "sshtrail.lost.end"


class StoreLetters:
    """The chunks of ``kafka.topic`` the store group (``consumer.store_group``) sent to
    ``kafka.dlq_topic``, read once, at the first question. A letter cut to fit the
    dead-letter topic no longer decodes and proves no chunk: its session's chunk is
    then reported as missing, and the whole message is at its origin offset."""

    def __init__(self, settings: Settings, timeout: float = 30.0) -> None:
        self._settings = settings
        self._timeout = timeout
        self._found: dict[uuid.UUID, dict[int, str]] | None = None

    def refused(self, sessions: Collection[uuid.UUID]) -> dict[uuid.UUID, Refused]:
        """The dead-lettered chunks of ``sessions`` (those with any)."""
        if self._found is None:
            self._found = self._read()
        return {sid: self._found[sid] for sid in sessions if sid in self._found}

    def _read(self) -> dict[uuid.UUID, dict[int, str]]:
        kafka = self._settings.kafka
        origin, group = kafka.topic.encode(), self._settings.consumer.store_group.encode()
        found: dict[uuid.UUID, dict[int, str]] = {}
        reader = topic_reader(self._settings, "cross-check", timeout=self._timeout)
        try:
            for message in whole_topic(reader, kafka.dlq_topic, self._timeout):
                headers = dict(message.headers() or [])
                if headers.get(HEADER_TOPIC) != origin or headers.get(HEADER_GROUP) != group:
                    continue
                try:
                    chunk = decode_chunk(message.value() or b"")
                except WireError:
                    continue
                found.setdefault(chunk.session_id, {})[chunk.seq] = chunk.digest.hex()
        except TopicMissing:
            return {}  # no dead-letter topic: no letters
        finally:
            reader.close()
        return found
