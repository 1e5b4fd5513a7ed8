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
from collections.abc import Iterable

from sqlalchemy import Engine, func, select, update

from sshtrail.errors import TopicMissing
from sshtrail.kafka.adapters import topic_reader
from sshtrail.kafka.readback import Stop, assign_since, read_to_ends
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
    found: set[str] = set()
    reader = topic_reader(settings, "alert-recheck", timeout=10.0)
    try:
        try:
            positions = assign_since(reader, topic, since_ms)
        except TopicMissing:
            return found  # never created: nothing was published
        read = read_to_ends(
            reader,
            topic,
            positions,
            lambda message: found.update(_alert_ids([message.value()])),
            within_s=RECHECK_LIMIT_S,
            max_messages=RECHECK_MAX_MESSAGES,
        )
    finally:
        reader.close()
    if read.stop is not Stop.END:
        log.warning(
            "alerts topic %s: read back %d messages and stopped (%s); alerts not found there "
            "are sent again",
            topic,
            read.read,
            read.stop.value,
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
