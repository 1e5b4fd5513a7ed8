"""``sshtrail gateway``: the recording SSH gateway, until SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys

import msgspec

from producer.service import GatewayService
from producer.workers import Supervisor, settle_garbage, warn_of_unstarted_spools, worker_count
from sshtrail.settings import Settings


def run(args: argparse.Namespace, settings: Settings) -> int:
    gw = settings.gateway
    if args.listen or args.port:
        if args.port is not None and not 0 <= args.port <= 65535:
            print(f"sshtrail: error: --port {args.port} is not a TCP port", file=sys.stderr)
            return 2
        port = args.port if args.port is not None else gw.port
        gw = msgspec.structs.replace(gw, listen=args.listen or gw.listen, port=port)
        settings = msgspec.structs.replace(settings, gateway=gw)
    logging.getLogger("asyncssh").setLevel(logging.WARNING)  # it logs commands at INFO
    workers = worker_count(gw)
    warn_of_unstarted_spools(settings, workers)
    if workers > 1:
        supervisor = Supervisor(settings, workers)
        status = supervisor.run(lambda running: _ready(settings, running, workers))
        print("gateway stopped", flush=True)
        return status
    service = GatewayService(settings)

    def ready(running: GatewayService) -> None:
        settle_garbage(gw.gc_thresholds)
        _ready(settings, running, 1)

    asyncio.run(service.run(ready))
    print("gateway stopped", flush=True)
    return 0


def _ready(settings: Settings, running: GatewayService | Supervisor, workers: int) -> None:
    gw = settings.gateway
    print(
        f"gateway listening on {gw.listen}:{running.port}, publishing to "
        f"{settings.bootstrap_servers} topic {settings.kafka.topic}"
        + (f" ({workers} workers)" if workers > 1 else ""),
        flush=True,
    )
    print(
        f"gateway host key {running.host_key.get_fingerprint()}; recordings signed by "
        f"{running.signing_key_path}.pub",
        flush=True,
    )
    if running.metrics_port:
        print(
            f"gateway metrics on http://{gw.metrics_listen}:{running.metrics_port}/metrics",
            flush=True,
        )
