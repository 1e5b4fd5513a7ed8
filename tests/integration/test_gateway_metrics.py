"""The gateway's ``/metrics``: every series from the first scrape, then what sessions and
refusals did to them, through real OpenSSH."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from sshtrail.broker import free_port
from tests.support.cli import sshtrail
from tests.support.consumers import commit, wait_for, watermarks, write_config
from tests.support.gateway import GatewayProcess
from tests.support.kafka import Broker
from tests.support.metrics import Samples, scrape, value
from tests.support.sshd import SshdTarget

pytestmark = pytest.mark.integration

COUNTERS = (
    "sshtrail_gateway_chunks_spooled_total",
    "sshtrail_gateway_bytes_spooled_total",
    "sshtrail_gateway_chunks_published_total",
    "sshtrail_gateway_publish_errors_total",
    "sshtrail_gateway_producer_replacements_total",
)
GAUGES = (
    "sshtrail_gateway_sessions",
    "sshtrail_gateway_kafka_reachable",
    "sshtrail_gateway_spool_pending_bytes",
    "sshtrail_gateway_spool_oldest_pending_seconds",
)


@pytest.fixture
def gateway(
    tmp_path: Path, broker: Broker, sshd: SshdTarget
) -> Iterator[tuple[GatewayProcess, int]]:
    port = free_port()
    process = GatewayProcess(
        tmp_path / "gw", broker.bootstrap_servers, sshd, extra=f"metrics_port = {port}"
    )
    process.start()
    yield process, port
    if process.process is not None and process.process.poll() is None:
        process.stop()


def test_every_series_is_there_at_once_and_counts_what_happened(
    gateway: tuple[GatewayProcess, int],
) -> None:
    process, port = gateway
    wait_for(
        lambda: any("/metrics" in line and str(port) in line for line in process.output),
        what="the gateway to say where its metrics are",
    )
    first = scrape(port)
    for name in (*COUNTERS, *GAUGES):
        assert value(first, name) == (1 if name == "sshtrail_gateway_kafka_reachable" else 0)
    for reason in ("authentication failed", "target not allowed", "max_sessions"):
        assert value(first, "sshtrail_gateway_refusals_total", reason=reason) == 0

    def ssh(login: str, key: Path | None = None) -> None:
        argv = process.ssh(login, "echo metrics", key=key)
        subprocess.run(argv, capture_output=True, timeout=30, check=False)

    ssh("alice:t1")
    ssh("alice:secret")  # a target alice may not use
    ssh("alice:t1", key=process.stranger_key)  # a key no operator has

    seen: list[Samples] = []

    def settled() -> bool:
        # The refusals are recorded as their connections close, which may be after
        # the clients have exited: settled is when both are counted and every chunk
        # spooled is published -- judged on one scrape, the one checked below (a
        # refusal's record may be spooled between two scrapes, or between two series
        # of one scrape: the counters are read before the pending bytes). A gauge
        # stuck above 0 times this out.
        now = scrape(port)
        seen.append(now)
        spooled = value(now, "sshtrail_gateway_chunks_spooled_total")
        refused = [
            value(now, "sshtrail_gateway_refusals_total", reason=reason)
            for reason in ("target not allowed", "authentication failed")
        ]
        published = value(now, "sshtrail_gateway_chunks_published_total") == spooled
        pending = value(now, "sshtrail_gateway_spool_pending_bytes")
        oldest = value(now, "sshtrail_gateway_spool_oldest_pending_seconds")
        return spooled > 0 and published and pending == oldest == 0 and refused == [1, 1]

    wait_for(settled, timeout=30, what="every spooled chunk published")
    after = seen[-1]
    assert value(after, "sshtrail_gateway_bytes_spooled_total") > 0
    assert value(after, "sshtrail_gateway_spool_oldest_pending_seconds") == 0
    assert value(after, "sshtrail_gateway_sessions") == 0
    assert value(after, "sshtrail_gateway_refusals_total", reason="target not allowed") == 1
    assert value(after, "sshtrail_gateway_refusals_total", reason="authentication failed") == 1


def test_lag_adds_the_gateways_backlog_for_end_to_end_lag(
    gateway: tuple[GatewayProcess, int], tmp_path: Path
) -> None:
    process, port = gateway
    subprocess.run(
        process.ssh("alice:t1", "echo e2e"), capture_output=True, timeout=30, check=False
    )
    wait_for(lambda: value(scrape(port), "sshtrail_gateway_spool_pending_bytes") == 0)
    config = write_config(
        tmp_path / "c.toml", process.servers, process.topic, f"sqlite:///{tmp_path / 's.db'}"
    )
    group = "caught-up"
    commit(process.servers, group, process.topic, watermarks(process.servers, process.topic))
    url = f"http://127.0.0.1:{port}/metrics"
    done = sshtrail(config, "lag", "--group", group, "--json", "--gateway-metrics", url)
    document = json.loads(done.stdout)
    assert document["gateway_backlog_s"] == 0
    assert document["groups"][0]["end_to_end_s"] == 0
    table = sshtrail(config, "lag", "--group", group, "--gateway-metrics", url).stdout.decode()
    assert "end to end 0.0s (gateway backlog 0.0s)" in table
    away = json.loads(
        sshtrail(
            config, "lag", "--group", group, "--json", "--gateway-metrics", "http://127.0.0.1:9/"
        ).stdout
    )
    assert away["gateway_backlog_s"] is None
    assert away["groups"][0]["end_to_end_s"] is None  # unknown, not 0
    bad = sshtrail(config, "lag", "--gateway-metrics", "file:///etc/passwd", check=False)
    assert bad.returncode == 2
