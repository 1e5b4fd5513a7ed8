"""Consumer lag as the broker sees it: log-end offset minus committed offset, per partition.

The same numbers ``kafka-consumer-groups.sh --describe`` prints, from the
AdminClient: committed offsets of the group, log-end offsets of the topic,
and which member owns each partition. Time lag is the age of the oldest
message the group has not consumed -- read from the broker at the committed
offset, so it keeps growing while a group is stopped; where that message
cannot be read (retention deleted it) the time lag is unknown, never 0. Each
partition gets a status (:mod:`consumer.lagstatus`) from the readings of the
last ``window_s`` seconds, a lone reading also by that age against the
groups' session timeout.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import time
import urllib.request
from collections import deque
from dataclasses import dataclass

from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from consumer.expired import Expired, account
from consumer.lagstatus import Reading, Status, evaluate, worst
from sshtrail.commandkit.arguments import is_http
from sshtrail.db import make_engine
from sshtrail.errors import BrokerError, InvalidError, SshtrailError
from sshtrail.kafka.adapters import topic_reader
from sshtrail.kafka.admin import kafka_admin
from sshtrail.settings import Settings

log = logging.getLogger(__name__)

#: Readings kept per partition, whatever the window.
MAX_READINGS = 600


@dataclass(frozen=True, slots=True)
class PartitionLag:
    """One row of ``sshtrail lag``; its field names are the ``--json`` shape."""

    group: str
    topic: str
    partition: int
    current_offset: int | None  # committed; None if the group never committed here
    log_end_offset: int
    low_offset: int  # the earliest offset the broker still has
    lag: int
    #: Age of the oldest unconsumed message; 0 when caught up, None when it cannot be
    #: read (deleted by retention, or the broker did not answer in time).
    time_lag_s: float | None
    status: str  # a :class:`~consumer.lagstatus.Status`
    reason: str
    consumer_id: str | None
    host: str | None
    client_id: str | None


class NoSuchGroup(InvalidError):
    """A group the broker has neither offsets nor members for."""


class LagReader:
    """Reads lag for groups over the sessions topic, and keeps the readings of the last
    ``window_s`` seconds to judge each partition by (:mod:`consumer.lagstatus`); reuse
    one reader across readings (``--watch``, ``--window``)."""

    def __init__(self, settings: Settings, timeout: float = 10.0, window_s: float = 0.0) -> None:
        self.topic = settings.kafka.topic
        self.window_s = window_s
        #: A lone reading whose oldest unread message is older than this is not OK
        #: (consumer.lagstatus): the groups' session timeout.
        self.unread_limit_s = settings.consumer.session_timeout_ms / 1000
        self._timeout = timeout
        self._servers = settings.bootstrap_servers
        self._admin = kafka_admin(settings, timeout)
        # Reads the message at a committed offset, for its timestamp; joins no group.
        self._probe = topic_reader(settings, "lag", timeout)
        self._readings: dict[tuple[str, int], deque[Reading]] = {}
        #: The store, opened when a group's committed offset is found below the log start.
        self._database_url = settings.database_url
        self._store: Engine | None = None
        self._accounted: dict[tuple[int, tuple[int, int]], Expired] = {}

    def close(self) -> None:
        self._probe.close()
        if self._store is not None:
            self._store.dispose()

    def partitions(self) -> list[int]:
        """The topic's partitions."""
        return self._probe.partitions(self.topic)

    def read(self, group: str, ages: bool = True) -> list[PartitionLag]:
        """The group's lag now, each partition judged over the window. Without ``ages``
        the oldest messages are not fetched (a reading kept only to judge by: its time
        lags say None)."""
        try:
            partitions = self._probe.partitions(self.topic)
            state = self._admin.group(group, self.topic)
            marks = {p: self._probe.watermarks(self.topic, p) for p in partitions}
        except BrokerError as exc:
            raise BrokerError(
                f"cannot read the lag of {group} from {self._servers}: {exc.reason}"
            ) from None
        if not state.exists:
            raise NoSuchGroup(
                f"no consumer group {group!r} on {self._servers}: it has no committed offsets "
                "and no members (the groups of these settings: consumer.store_group, "
                "consumer.index_group, and consumer.alert_group when alerts.rules is set)"
            )
        now = time.time()
        rows = []
        for partition in partitions:
            current = state.committed.get(partition)
            low, end = marks[partition]
            owner = state.owners.get(partition)
            reading = Reading(now, current, low, end, owner is not None)
            lag = reading.lag
            start = current if current is not None else low
            if lag == 0:
                seconds: float | None = 0.0
            else:
                seconds = self._age(partition, start, low, now) if ages else None
            expired = None
            if current is not None and current < low:
                expired = self._expired(partition, (current, low), len(partitions), end, now)
            reading = dataclasses.replace(reading, oldest_s=seconds, expired=expired)
            status, reason = evaluate(
                self._remember(group, partition, reading), self.unread_limit_s
            )
            rows.append(
                PartitionLag(
                    group,
                    self.topic,
                    partition,
                    current,
                    end,
                    low,
                    lag,
                    None if seconds is None else round(seconds, 3),
                    status.value,
                    reason,
                    owner.member_id if owner else None,
                    owner.host if owner else None,
                    owner.client_id if owner else None,
                )
            )
        return rows

    def _remember(self, group: str, partition: int, reading: Reading) -> list[Reading]:
        """The partition's readings within the window, this one last."""
        kept = self._readings.setdefault((group, partition), deque(maxlen=MAX_READINGS))
        kept.append(reading)
        while kept[0].at < reading.at - self.window_s:
            kept.popleft()
        return list(kept)

    def _expired(
        self, partition: int, span: tuple[int, int], partitions: int, end: int, now: float
    ) -> Expired | None:
        """What the store says of the offsets ``span`` Kafka deleted before the group
        read them (:mod:`consumer.expired`); None when the store cannot be asked. Asked
        once per span: a watch reads the same span again and again."""
        if (partition, span) in self._accounted:
            return self._accounted[(partition, span)]
        kept_at = None
        if span[1] < end:
            age = self._age(partition, span[1], span[1], now)
            kept_at = dt.datetime.fromtimestamp(now - age, dt.UTC) if age is not None else None
        try:
            if self._store is None:
                self._store = make_engine(self._database_url)
            found = account(self._store, partition, span, partitions, kept_at)
        except (SQLAlchemyError, SshtrailError) as exc:
            log.warning("lag: cannot ask the store about expired offsets: %s", exc)
            return None
        self._accounted[(partition, span)] = found
        return found

    def _age(self, partition: int, offset: int, low: int, now: float) -> float | None:
        """Seconds since the message at ``offset`` was published; None if it cannot be
        read (deleted: the reader would be moved to another message, whose age would be
        a lie)."""
        if offset < low:
            return None
        self._probe.assign(self.topic, {partition: offset})
        deadline = time.monotonic() + self._timeout
        while time.monotonic() < deadline:
            for message in self._probe.consume(1, 0.5):
                if message.offset() != offset:
                    return None
                _kind, millis = message.timestamp()
                return max(now - millis / 1000, 0.0)
        return None


def group_totals(rows: list[PartitionLag]) -> tuple[Status, int, float | None]:
    """A group's status (its worst partition's), total lag, and its oldest unconsumed
    message's age (None if any partition's is unknown)."""
    ages = [r.time_lag_s for r in rows]
    oldest = None if any(a is None for a in ages) else max((a or 0.0 for a in ages), default=0.0)
    return worst([Status(r.status) for r in rows]), sum(r.lag for r in rows), oldest


def gateway_urls(settings: Settings, given: list[str] | None) -> list[str]:
    """The gateways' ``/metrics`` to read the oldest unpublished chunk from: those
    given, else this settings file's gateway if it serves metrics."""
    if given:
        return given
    gw = settings.gateway
    if not gw.metrics_port:
        return []
    host = "127.0.0.1" if gw.metrics_listen in ("0.0.0.0", "::", "") else gw.metrics_listen
    return [f"http://{host}:{gw.metrics_port}/metrics"]


def gateway_backlog_s(urls: list[str], timeout: float = 2.0) -> float | None:
    """The age of the oldest chunk recorded and not yet in Kafka, over the gateways at
    ``urls`` (the gateway's half of end-to-end lag); None if none of them answers."""
    ages = []
    for url in urls:
        if not is_http(url):
            log.warning("not an http(s) URL, skipped: %s", url)
            continue
        try:
            with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310
                text = response.read().decode()
        except (OSError, ValueError) as exc:
            log.debug("gateway metrics at %s: %s", url, exc)
            continue
        for family in text_string_to_metric_families(text):
            if family.name == "sshtrail_gateway_spool_oldest_pending_seconds":
                ages += [sample.value for sample in family.samples]
    return max(ages) if ages else None


def end_to_end_s(backlog_s: float | None, time_lag_s: float | None) -> float | None:
    """From a keystroke at a gateway to the group having it: the gateway's backlog plus
    the group's time lag; None if either is unknown."""
    if backlog_s is None or time_lag_s is None:
        return None
    return round(backlog_s + time_lag_s, 3)
