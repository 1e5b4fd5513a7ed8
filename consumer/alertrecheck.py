"""Alerts a member published and did not live to mark: found on the topic, not sent twice.

The outbox (:mod:`consumer.alertoutbox`) hands an alert to the producer, and marks it
``published`` in the store once the broker has acknowledged it. A member killed between
the two leaves an alert that is on the topic and not marked; its successor would send it
again. Before it sends anything, the successor reads the alerts topic from a little
before the oldest unmarked alert's time and marks those it finds there: each alert is
on the topic once, however the member before it ended.

The topic is read from ``at - RECHECK_MARGIN``: an alert's ``at`` is the moment of the
command in the session (the gateway's clock), always before it was stored and
published; the margin covers a gateway clock that runs ahead of the broker's. The read
is bounded (:data:`RECHECK_LIMIT_S`, :data:`RECHECK_MAX_MESSAGES`): an alerts topic
holding more than that since the oldest unsent alert is read in part, said so in the
log, and what was not found is sent again (at least once, as before).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
from collections.abc import Iterable

from sqlalchemy import Engine, func, select, update

from sshtrail.errors import TopicMissing
from sshtrail.kafka.adapters import KafkaTopicReader, topic_reader
from sshtrail.settings import Settings
from sshtrail.tables import ALERTS

log = logging.getLogger(__name__)

#: How far before the oldest unmarked alert's time the topic is read.
RECHECK_MARGIN = dt.timedelta(minutes=5)
#: How long reading the topic back may take ...
RECHECK_LIMIT_S = 60.0
#: ... and how many of its messages it reads at most.
RECHECK_MAX_MESSAGES = 1_000_000
#: Alert ids marked in one statement.
MARK_AT_ONCE = 500


def recheck(settings: Settings, engine: Engine, topic: str) -> int:
    """Mark the unmarked alerts already on ``topic`` as published; how many were.

    Raises :class:`~sshtrail.errors.BrokerError` when the topic cannot be read (the
    caller tries again before it sends anything)."""
    with engine.connect() as conn:
        oldest = conn.execute(
            select(func.min(ALERTS.c.at)).where(ALERTS.c.published.is_(False))
        ).scalar()
    if oldest is None:
        return 0
    since = oldest - RECHECK_MARGIN
    found = _ids_on_topic(settings, topic, int(since.timestamp() * 1000))
    marked = 0
    ids = sorted(found)
    for start in range(0, len(ids), MARK_AT_ONCE):
        with engine.begin() as conn:
            marked += conn.execute(
                update(ALERTS)
                .where(ALERTS.c.id.in_(ids[start : start + MARK_AT_ONCE]))
                .where(ALERTS.c.published.is_(False))
                .values(published=True)
            ).rowcount
    if marked:
        log.warning(
            "alerts topic %s: %d alerts were published before the last member stopped and "
            "not marked; marked now, not sent again",
            topic,
            marked,
        )
    return marked


def _ids_on_topic(settings: Settings, topic: str, since_ms: int) -> set[str]:
    """The ``id`` of every alert on ``topic`` from ``since_ms`` on (bounded; see the module)."""
    reader = topic_reader(settings, "alert-recheck", timeout=10.0)
    try:
        try:
            partitions = reader.partitions(topic)
        except TopicMissing:
            return set()  # never created: nothing was published
        ends: dict[int, int] = {}
        starts: dict[int, int] = {}
        for partition in partitions:
            low, high = reader.watermarks(topic, partition)
            start = reader.offset_at(topic, partition, since_ms)
            if start is not None and max(start, low) < high:
                starts[partition], ends[partition] = max(start, low), high
        if not starts:
            return set()
        reader.assign(topic, starts)
        return _read_to(reader, topic, ends)
    finally:
        reader.close()


def _read_to(reader: KafkaTopicReader, topic: str, ends: dict[int, int]) -> set[str]:
    found: set[str] = set()
    left = dict(ends)
    read = 0
    deadline = time.monotonic() + RECHECK_LIMIT_S
    while left and time.monotonic() < deadline and read < RECHECK_MAX_MESSAGES:
        messages = reader.consume(500, 0.5)
        read += len(messages)
        for message in messages:
            partition, offset = message.partition(), message.offset()
            found.update(_alert_ids([message.value()]))
            if partition in left and offset is not None and offset + 1 >= left[partition]:
                del left[partition]
    if left:
        log.warning(
            "alerts topic %s: read back %d messages and stopped (%s); alerts not found there "
            "are sent again",
            topic,
            read,
            "time" if time.monotonic() >= deadline else "count",
        )
    return found


def _alert_ids(values: Iterable[bytes | None]) -> set[str]:
    """The ids of the alert documents among ``values``; what is not one is skipped."""
    ids: set[str] = set()
    for value in values:
        try:
            document = json.loads(value or b"")
        except (ValueError, UnicodeDecodeError):
            continue
        if isinstance(document, dict) and isinstance(document.get("id"), str):
            ids.add(document["id"])
    return ids
