"""``sshtrail lag-exporter``: lag and status of every group, computed centrally, for Prometheus.

Like kminion or kafka-lag-exporter: one process reads the broker's view of
each group (:class:`~consumer.lag.LagReader`) every ``interval`` seconds and
serves it on a port of its own, so lag stays visible when every member of a
group is down or stuck -- the moment members' own gauges stop. Statuses are
judged over the readings of the last :data:`WINDOW_READINGS` intervals.

Series (every one present from the first scrape, at 0 until known):

* ``sshtrail_consumergroup_lag{group,topic,partition}`` -- messages;
* ``sshtrail_consumergroup_lag_seconds{group,topic,partition}`` -- age of the
  oldest unconsumed message; NaN when it cannot be read;
* ``sshtrail_consumergroup_committed_offset`` and
  ``sshtrail_consumergroup_log_end_offset`` (same labels);
* ``sshtrail_consumergroup_status{group,topic,partition,status}`` -- 1 for the
  partition's status, 0 for the others (one series per status);
* ``sshtrail_consumergroup_group_status{group,status}`` -- the same per group;
* ``sshtrail_consumergroup_up{group}`` -- 1 if the group was read, 0 if it
  does not exist or the broker could not be reached;
* ``sshtrail_end_to_end_lag_seconds{group}`` -- the oldest chunk the gateways
  (``--gateway-metrics``) have not yet published plus the group's time lag:
  from a keystroke to the group having it; NaN when unknown;
* ``sshtrail_lag_exporter_errors_total{group}`` -- failed readings.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence

from prometheus_client import CollectorRegistry, Counter, Gauge, start_http_server

from consumer.lag import LagReader, PartitionLag, end_to_end_s, gateway_backlog_s, group_totals
from consumer.lagstatus import Status
from sshtrail.errors import BrokerError, InvalidError
from sshtrail.settings import Settings

log = logging.getLogger(__name__)

#: Readings a status is judged over.
WINDOW_READINGS = 10


class LagMetrics:
    """The exporter's series, for the groups it watches."""

    def __init__(self, topic: str, groups: Sequence[str], partitions: Sequence[int]) -> None:
        self.registry = CollectorRegistry()
        self.topic = topic
        labels = ["group", "topic", "partition"]

        def gauge(name: str, doc: str, names: list[str] = labels) -> Gauge:
            return Gauge(name, doc, names, registry=self.registry)

        self._lag = gauge("sshtrail_consumergroup_lag", "Messages the group has not consumed.")
        self._seconds = gauge(
            "sshtrail_consumergroup_lag_seconds",
            "Age of the oldest message the group has not consumed (NaN: unknown).",
        )
        self._committed = gauge(
            "sshtrail_consumergroup_committed_offset", "The group's committed offset."
        )
        self._end = gauge("sshtrail_consumergroup_log_end_offset", "The partition's log end.")
        self._status = gauge(
            "sshtrail_consumergroup_status",
            "1 for the partition's status (OK, WARN, STALL, STOP, REWIND, DATA-LOSS).",
            [*labels, "status"],
        )
        self._group_status = gauge(
            "sshtrail_consumergroup_group_status",
            "1 for the group's status: its worst partition's.",
            ["group", "status"],
        )
        self._up = gauge("sshtrail_consumergroup_up", "1 if the group could be read.", ["group"])
        self._end_to_end = gauge(
            "sshtrail_end_to_end_lag_seconds",
            "The gateways' oldest chunk not yet in Kafka plus the group's time lag "
            "(NaN: unknown, or no gateway given).",
            ["group"],
        )
        self._errors = Counter(
            "sshtrail_lag_exporter_errors",
            "Readings of a group that failed.",
            ["group"],
            registry=self.registry,
        )
        for group in groups:
            self._up.labels(group)
            self._errors.labels(group)
            self._end_to_end.labels(group).set(float("nan"))
            self._set_status(self._group_status, (group,), None)
            for partition in partitions:
                key = (group, topic, str(partition))
                for metric in (self._lag, self._seconds, self._committed, self._end):
                    metric.labels(*key)
                self._set_status(self._status, key, None)

    def serve(self, listen: str, port: int) -> int:
        server, _thread = start_http_server(port, listen, registry=self.registry)
        bound: int = server.server_port
        return bound

    def update(self, group: str, rows: list[PartitionLag], backlog: float | None) -> None:
        for row in rows:
            key = (group, row.topic, str(row.partition))
            self._lag.labels(*key).set(row.lag)
            self._seconds.labels(*key).set(
                float("nan") if row.time_lag_s is None else row.time_lag_s
            )
            if row.current_offset is not None:
                self._committed.labels(*key).set(row.current_offset)
            self._end.labels(*key).set(row.log_end_offset)
            self._set_status(self._status, key, Status(row.status))
        status, _lag, oldest = group_totals(rows)
        self._set_status(self._group_status, (group,), status)
        total = end_to_end_s(backlog, oldest)
        self._end_to_end.labels(group).set(float("nan") if total is None else total)
        self._up.labels(group).set(1)

    def failed(self, group: str) -> None:
        self._up.labels(group).set(0)
        self._errors.labels(group).inc()

    @staticmethod
    def _set_status(gauge: Gauge, key: tuple[str, ...], status: Status | None) -> None:
        for each in Status:
            gauge.labels(*key, each.value).set(1 if each is status else 0)


def run_exporter(
    settings: Settings,
    groups: Sequence[str],
    *,
    gateways: list[str],
    listen: str,
    port: int,
    interval_s: float,
    stopped: Callable[[float], bool],
) -> None:
    """Read every group each ``interval_s`` and serve the series until ``stopped(wait)``
    says so (it waits up to ``wait`` seconds)."""
    reader = LagReader(settings, window_s=interval_s * WINDOW_READINGS)
    try:
        partitions = _partitions(reader, stopped)
        if partitions is None:
            return
        metrics = LagMetrics(reader.topic, groups, partitions)
        bound = metrics.serve(listen, port)
        print(
            f"lag-exporter: groups {', '.join(groups)} of {reader.topic}, every "
            f"{interval_s:g} s; metrics on http://{listen}:{bound}/metrics",
            flush=True,
        )
        while True:
            started = time.monotonic()
            backlog = gateway_backlog_s(gateways) if gateways else None
            for group in groups:
                try:
                    metrics.update(group, reader.read(group), backlog)
                except (BrokerError, InvalidError) as exc:
                    log.warning("cannot read group %s: %s", group, exc)
                    metrics.failed(group)
            if stopped(max(0.0, interval_s - (time.monotonic() - started))):
                return
    finally:
        reader.close()


def _partitions(reader: LagReader, stopped: Callable[[float], bool]) -> list[int] | None:
    """The topic's partitions, waiting for the broker; None if stopped first."""
    while True:
        try:
            return reader.partitions()
        except BrokerError as exc:
            log.warning("waiting for the broker: %s", exc)
            if stopped(5.0):
                return None
