"""Readers that rest while caught up, on a broker that does not hold empty fetches.

A real Kafka holds a fetch with nothing to return for ``fetch.wait.max.ms``;
the embedded broker answers it at once, so a caught-up librdkafka consumer
fetches in a loop and takes a core (docs/decisions.md, "Idle members rest on
the embedded broker"). The group members pause their partitions; readers
that join no group (the gateways' control listener, the web console's live
view) let go of their partitions instead, look at the log ends every
:func:`idle_check_s`, and take them back when one moved. With a real Kafka
the interval is 0 and nothing rests: fetches are held by the broker.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping

from sshtrail.kafka.ports import TopicReader
from sshtrail.settings import Settings


def idle_check_s(settings: Settings) -> float:
    """How often a caught-up reader looks for new messages instead of fetching; 0: it
    fetches (a real Kafka holds an empty fetch for ``fetch.wait.max.ms``). ``-1`` is
    100 ms on the embedded broker, which answers at once (docs/decisions.md)."""
    chosen = settings.consumer.idle_check_ms
    if chosen >= 0:
        return chosen / 1000
    return 0.1 if settings.embedded_broker else 0.0


def rest_until_more(
    reader: TopicReader,
    topic: str,
    positions: Mapping[int, int],
    every_s: float,
    wake: threading.Event,
) -> bool:
    """Hold no partitions until a log end passes its position in ``positions`` (then
    read from ``positions`` again: True) or ``wake`` is set (False; the caller
    assigns what it wants)."""
    reader.assign(topic, {})
    while not wake.wait(every_s):
        if any(reader.watermarks(topic, p)[1] > at for p, at in positions.items()):
            reader.assign(topic, positions)
            return True
    return False
