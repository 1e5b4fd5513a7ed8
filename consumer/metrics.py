"""Prometheus metrics of one consumer instance, served on ``/metrics`` when a port is set."""

from __future__ import annotations

import logging
from collections.abc import Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

log = logging.getLogger(__name__)

_BATCH_BUCKETS = (1, 10, 50, 100, 250, 500, 1000, 2000, 5000, 10_000)
_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


class ConsumerMetrics:
    """The counters a runner and its writer update; one registry per instance.

    Every series carries the ``group`` label, so instances of both groups can
    be scraped into one Prometheus without clashing.
    """

    def __init__(self, group: str) -> None:
        self.registry = CollectorRegistry()
        self.group = group
        labels = ["group"]

        def counter(name: str, doc: str) -> Counter:
            return Counter(name, doc, labels, registry=self.registry)

        self._consumed = counter("sshtrail_messages_consumed", "Messages read from the topic.")
        self._written = counter("sshtrail_chunks_written", "Chunks newly written by this group.")
        self._duplicates = counter(
            "sshtrail_chunks_duplicate", "Chunks already present, ignored (re-deliveries)."
        )
        self._dead = counter(
            "sshtrail_messages_dead_lettered",
            "Messages that were not valid chunks, sent to the DLQ.",
        )
        self._refused = counter(
            "sshtrail_chunks_refused",
            "Chunks no trusted gateway signed (forged, or unsigned): not taken as the "
            "session's; the store keeps them as evidence.",
        )
        self._retries = counter(
            "sshtrail_write_retries", "Failed writes that will be retried (database away)."
        )
        self._commit_failures = counter(
            "sshtrail_commit_failures", "Offset commits the broker refused (made again or re-read)."
        )
        self._quarantined = counter(
            "sshtrail_sessions_quarantined",
            "Sessions marked quarantined: chunks of them the database refused (in the DLQ).",
        )
        self._lost = counter(
            "sshtrail_offsets_lost",
            "Offsets the broker deleted before this group read them (DATA-LOSS).",
        )
        self._stalled = Gauge(
            "sshtrail_consumer_stalled",
            "1 while this member has stopped taking messages (dead-letter limit exceeded).",
            labels,
            registry=self.registry,
        )
        self._batch = Histogram(
            "sshtrail_batch_messages",
            "Messages per written batch.",
            labels,
            buckets=_BATCH_BUCKETS,
            registry=self.registry,
        )
        self._latency = Histogram(
            "sshtrail_write_seconds",
            "Time to write and commit a batch.",
            labels,
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self._lag = Gauge(
            "sshtrail_consumer_lag_messages",
            "Log-end offset minus this group's committed offset.",
            ["group", "topic", "partition"],
            registry=self.registry,
        )
        self._lag_seconds = Gauge(
            "sshtrail_consumer_lag_seconds",
            "Age of the oldest message this group has not consumed.",
            ["group", "topic", "partition"],
            registry=self.registry,
        )

        # Every series exists from the first scrape, at zero: an alert on "any
        # increase" must see the first dead letter after a restart.
        for metric in (
            self._consumed,
            self._written,
            self._duplicates,
            self._dead,
            self._retries,
            self._commit_failures,
            self._quarantined,
            self._lost,
            self._stalled,
        ):
            metric.labels(group)

    def serve(self, listen: str, port: int) -> int:
        """Serve ``/metrics`` on ``listen:port`` from a daemon thread; returns the port."""
        server, _thread = start_http_server(port, listen, registry=self.registry)
        bound: int = server.server_port
        log.info("metrics on http://%s:%d/metrics", listen, bound)
        return bound

    def consumed(self, count: int) -> None:
        self._consumed.labels(self.group).inc(count)

    def batch_written(self, size: int, written: int, duplicates: int, seconds: float) -> None:
        self._written.labels(self.group).inc(written)
        self._duplicates.labels(self.group).inc(duplicates)
        self._batch.labels(self.group).observe(size)
        self._latency.labels(self.group).observe(seconds)

    def dead_lettered(self, count: int) -> None:
        self._dead.labels(self.group).inc(count)

    def refused(self, count: int) -> None:
        self._refused.labels(self.group).inc(count)

    def retry(self) -> None:
        self._retries.labels(self.group).inc()

    def commit_failed(self) -> None:
        self._commit_failures.labels(self.group).inc()

    def quarantined(self, sessions: int) -> None:
        self._quarantined.labels(self.group).inc(sessions)

    def lost(self, offsets: int) -> None:
        self._lost.labels(self.group).inc(offsets)

    def stalled(self, stalled: bool) -> None:
        self._stalled.labels(self.group).set(1 if stalled else 0)

    def lag(self, topic: str, messages: Mapping[int, int], seconds: Mapping[int, float]) -> None:
        """Set the lag of the partitions this instance owns; forget the others."""
        for gauge, values in ((self._lag, messages), (self._lag_seconds, seconds)):
            gauge.clear()
            for partition, value in values.items():
                gauge.labels(self.group, topic, str(partition)).set(value)

    def value(self, name: str) -> float:
        """Current value of a series of this group (tests and the CLI's summary)."""
        return self.registry.get_sample_value(name, {"group": self.group}) or 0.0
