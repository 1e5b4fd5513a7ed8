"""The gateway's Prometheus ``/metrics``: sessions, recording, spool, publishing, refusals.

Read from the gateway's own state at each scrape (a custom collector), so
nothing on the data path pays for it. Every series exists from the first
scrape; refusals by each known kind start at 0.

* ``sshtrail_gateway_sessions`` -- sessions and forwarded connections open;
* ``sshtrail_gateway_chunks_spooled_total``, ``..._bytes_spooled_total`` --
  recorded chunks written to the spool (and their bytes on disk);
* ``sshtrail_gateway_chunks_published_total`` -- chunks Kafka acknowledged;
* ``sshtrail_gateway_publish_errors_total`` -- deliveries that failed (retried);
* ``sshtrail_gateway_producer_replacements_total`` -- producers replaced after a
  fatal error;
* ``sshtrail_gateway_chunks_lost_total`` -- chunks that could not be encoded
  or spooled (each is logged; a recorder process that died loses what it had
  not spooled);
* ``sshtrail_gateway_kafka_reachable`` -- 1 while the broker answers;
* ``sshtrail_gateway_spool_pending_bytes`` -- recorded, not yet in Kafka;
* ``sshtrail_gateway_spool_oldest_pending_seconds`` -- age of the oldest chunk
  not yet in Kafka: the gateway's half of end-to-end lag;
* ``sshtrail_gateway_refusals_total{reason}`` -- logins and sessions refused;
* ``sshtrail_gateway_loop_stall_longest_seconds`` -- the event loop's longest
  stall since the start, ``..._loop_stalls_total{over}`` -- stalls beyond 5 and
  50 ms, ``..._gc_pause_longest_seconds{generation}`` -- the longest garbage
  collection of each generation (``producer/loopwatch.py``).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from producer.gateway import Gateway
    from producer.loopwatch import LoopWatch
    from producer.recording import Recording

#: Every kind of refusal (``Refuse.kind``, ``Refused.kind``: a few fixed words, never an
#: operator's or an auditor's text), counted from the start, so a first one is an
#: increase an alert sees.
REFUSAL_KINDS = (
    "authentication failed",
    "malformed login",
    "unknown operator",
    "too many failures",
    "too many failures for this operator",
    "too many authentication failures",
    "too many pending logins",
    "target not allowed",
    "max_sessions",
    "max_sessions_per_operator",
    "spool full",
    "port forwarding not allowed",
    "shutting down",
    "operator locked",
    "locks not read",
    "no target given",
    "no target",
    "no host key",
    "target host key mismatch",
    "target denied the gateway's key",
    "target unreachable",
    "target refused the channel",
    "forwarding failed",
    "command rejected",
    "policy unreadable",
)


class GatewayCollector(Collector):
    """Reads one gateway process's state when scraped."""

    def __init__(
        self, gateway: Gateway, recording: Recording, watch: LoopWatch | None = None
    ) -> None:
        self._gateway = gateway
        self._recording = recording
        self._watch = watch

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        figures = self._recording.figures()
        yield GaugeMetricFamily(
            "sshtrail_gateway_sessions",
            "Sessions and forwarded connections open.",
            value=len(self._gateway.sessions),
        )
        for name, doc, value in (
            ("chunks_spooled", "Recorded chunks written to the spool.", figures.chunks_spooled),
            ("bytes_spooled", "Bytes written to the spool.", figures.bytes_spooled),
            ("chunks_published", "Chunks Kafka acknowledged.", figures.chunks_published),
            (
                "publish_errors",
                "Deliveries to Kafka that failed (retried).",
                figures.publish_errors,
            ),
            (
                "producer_replacements",
                "Kafka producers replaced after a fatal error.",
                figures.producer_replacements,
            ),
            ("chunks_lost", "Chunks that could not be encoded or spooled.", figures.lost),
        ):
            yield CounterMetricFamily(f"sshtrail_gateway_{name}", doc, value=value)
        yield GaugeMetricFamily(
            "sshtrail_gateway_kafka_reachable",
            "1 while the broker answers the publisher.",
            value=1 if figures.kafka_reachable else 0,
        )
        yield GaugeMetricFamily(
            "sshtrail_gateway_spool_pending_bytes",
            "Bytes recorded and not yet acknowledged by Kafka.",
            value=figures.pending,
        )
        yield GaugeMetricFamily(
            "sshtrail_gateway_spool_oldest_pending_seconds",
            "Age of the oldest chunk not yet in Kafka (0: none).",
            value=figures.oldest_pending_s,
        )
        refusals = CounterMetricFamily(
            "sshtrail_gateway_refusals",
            "Logins and sessions refused, by reason.",
            labels=["reason"],
        )
        counted = self._gateway.admission.refusals
        for kind in dict.fromkeys([*REFUSAL_KINDS, *counted]):
            refusals.add_metric([kind], counted.get(kind, 0))
        yield refusals
        if self._watch is not None:
            yield from _loop_series(self._watch)


def _loop_series(watch: LoopWatch) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
    yield GaugeMetricFamily(
        "sshtrail_gateway_loop_stall_longest_seconds",
        "The event loop's longest stall since the start.",
        value=watch.longest_stall(),
    )
    stalls = CounterMetricFamily(
        "sshtrail_gateway_loop_stalls",
        "Event loop stalls longer than 'over' seconds.",
        labels=["over"],
    )
    for limit, count in watch.over.items():
        stalls.add_metric([f"{limit:g}"], count)
    yield stalls
    pauses = GaugeMetricFamily(
        "sshtrail_gateway_gc_pause_longest_seconds",
        "The longest garbage collection of each generation since the start.",
        labels=["generation"],
    )
    for generation, longest in enumerate(watch.gc_longest):
        pauses.add_metric([str(generation)], longest)
    yield pauses


def serve(collector: GatewayCollector, listen: str, port: int) -> int:
    """Serve ``/metrics`` from a daemon thread; returns the port bound."""
    registry = CollectorRegistry()
    registry.register(collector)
    server, _thread = start_http_server(port, listen, registry=registry)
    bound: int = server.server_port
    return bound
