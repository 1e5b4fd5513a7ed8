"""Reading a whole topic, every partition from its earliest offset to its end, once.

For commands that hold something to what a topic says (``access-log --verify``
to the heads, ``verify --cross-check`` to the dead letters): the end of each
partition is taken when reading starts, so a topic written meanwhile still
ends, and a partition that gives nothing for ``timeout`` seconds short of its
end is a :class:`~sshtrail.errors.BrokerError`, not a hang.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

from sshtrail.errors import BrokerError
from sshtrail.kafka.ports import Message, TopicReader


def whole_topic(reader: TopicReader, topic: str, timeout: float) -> Iterator[Message]:
    """Every message of ``topic``, partition by partition, in offset order;
    :class:`~sshtrail.errors.TopicMissing` if there is no such topic."""
    for partition in reader.partitions(topic):
        low, high = reader.watermarks(topic, partition)
        if low >= high:
            continue
        reader.assign(topic, {partition: low})
        position, quiet_since = low, time.monotonic()
        while position < high:
            # Short waits: compaction leaves fewer messages than offsets, and a
            # consume() waits its whole timeout for as many as it asks for.
            messages = reader.consume(min(1000, high - position), 0.5)
            if not messages:
                if time.monotonic() - quiet_since > timeout:
                    raise BrokerError(
                        f"partition {partition} of {topic} gave nothing from offset "
                        f"{position} in {timeout:.0f} s"
                    )
                continue
            quiet_since = time.monotonic()
            for message in messages:
                position = max(position, (message.offset() or 0) + 1)
                if (message.offset() or 0) < high:
                    yield message
