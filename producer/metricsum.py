"""One ``/metrics`` for a gateway of several workers: each worker's series, summed.

Every worker serves its own :class:`~producer.metrics.GatewayCollector` on a
port of 127.0.0.1 that only the supervisor reads (``producer/workers.py``);
the supervisor's ``gateway.metrics_port`` answers a scrape by reading every
worker's at that moment and adding them up, series by series (same name,
same labels). Summing is right for every series but two: Kafka is reachable
only if it is from every worker (the least), and the oldest chunk not yet in
Kafka is the oldest of any worker's (the greatest). A worker that does not
answer within :data:`SCRAPE_TIMEOUT_S` (it is being replaced) is left out of
that scrape, and counted in ``sshtrail_gateway_workers_unanswered``.

A worker's counters start from 0 when it is replaced, so a summed counter
can go down: Prometheus' ``rate`` and ``increase`` take that for a reset.
"""

from __future__ import annotations

import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

from prometheus_client import Metric
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector

#: How long a scrape waits for each worker.
SCRAPE_TIMEOUT_S = 2.0
#: Series not summed: how their workers' values combine instead.
COMBINE: dict[str, Callable[[list[float]], float]] = {
    "sshtrail_gateway_kafka_reachable": min,
    "sshtrail_gateway_spool_oldest_pending_seconds": max,
    "sshtrail_gateway_loop_stall_longest_seconds": max,
    "sshtrail_gateway_gc_pause_longest_seconds": max,
}


class WorkersCollector(Collector):
    """Reads the workers' ``/metrics`` when scraped and yields their sums."""

    def __init__(
        self, ports: Callable[[], list[int]], restarts: Callable[[], int], workers: int
    ) -> None:
        self._ports = ports
        self._restarts = restarts
        self._workers = workers

    def collect(self) -> Iterator[Metric]:
        ports = self._ports()
        with ThreadPoolExecutor(max(len(ports), 1)) as pool:
            texts = list(pool.map(_scrape, ports))
        answered = [text for text in texts if text is not None]
        yield from combine(answered)
        yield GaugeMetricFamily(
            "sshtrail_gateway_workers", "Worker processes configured.", value=self._workers
        )
        yield GaugeMetricFamily(
            "sshtrail_gateway_workers_unanswered",
            "Workers whose metrics this scrape could not read (being replaced).",
            value=self._workers - len(answered),
        )
        yield CounterMetricFamily(
            "sshtrail_gateway_worker_restarts",
            "Workers that died and were replaced.",
            value=self._restarts(),
        )


def combine(texts: list[str]) -> Iterator[Metric]:
    """The series of every text exposition in ``texts``, added up (:data:`COMBINE`)."""
    families: dict[str, Metric] = {}
    values: dict[tuple[str, str, tuple[tuple[str, str], ...]], list[float]] = {}
    for text in texts:
        for family in text_string_to_metric_families(text):
            families.setdefault(family.name, Metric(family.name, family.documentation, family.type))
            for sample in family.samples:
                if sample.name.endswith("_created"):
                    continue  # a worker's own start time: not summable
                key = (family.name, sample.name, tuple(sorted(sample.labels.items())))
                values.setdefault(key, []).append(sample.value)
    for (family_name, sample_name, labels), found in values.items():
        how = COMBINE.get(family_name, sum)
        families[family_name].add_sample(sample_name, dict(labels), how(found))
    yield from families.values()


def _scrape(port: int) -> str | None:
    try:
        with urllib.request.urlopen(
            f"http://127.0.0.1:{port}/metrics", timeout=SCRAPE_TIMEOUT_S
        ) as answer:
            text: str = answer.read().decode()
            return text
    except OSError:
        return None
