"""``sshtrail gateway`` and ``sshtrail password-hash`` (registered via entry point)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import getpass
import logging
import signal
import sys

import msgspec

from producer import demo
from producer.service import GatewayService
from sshtrail.errors import ConfigError
from sshtrail.passwords import hash_password
from sshtrail.settings import Settings


def run_gateway(args: argparse.Namespace, settings: Settings) -> int:
    gw = settings.gateway
    if args.listen or args.port:
        if args.port is not None and not 0 <= args.port <= 65535:
            print(f"sshtrail: error: --port {args.port} is not a TCP port", file=sys.stderr)
            return 2
        port = args.port if args.port is not None else gw.port
        gw = msgspec.structs.replace(gw, listen=args.listen or gw.listen, port=port)
        settings = msgspec.structs.replace(settings, gateway=gw)
    logging.getLogger("asyncssh").setLevel(logging.WARNING)  # it logs commands at INFO
    service = GatewayService(settings)

    def ready(running: GatewayService) -> None:
        print(
            f"gateway listening on {gw.listen}:{running.port}, publishing to "
            f"{settings.bootstrap_servers} topic {settings.kafka.topic}",
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

    asyncio.run(service.run(ready))
    print("gateway stopped", flush=True)
    return 0


def run_demo_target(args: argparse.Namespace, _settings: Settings) -> int:
    if not args.authorized_keys.is_file():
        raise ConfigError(f"demo target: no authorized keys file at {args.authorized_keys}")
    logging.getLogger("asyncssh").setLevel(logging.WARNING)
    loop = asyncio.new_event_loop()
    serving = loop.create_task(demo.serve(args.port, args.host_key, args.authorized_keys))
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, serving.cancel)
    print(f"demo target listening on 127.0.0.1:{args.port}", flush=True)
    with contextlib.suppress(asyncio.CancelledError):
        loop.run_until_complete(serving)
    loop.close()
    return 0


def run_password_hash(_args: argparse.Namespace, _settings: Settings) -> int:
    if sys.stdin.isatty():
        password = getpass.getpass("password: ")
        if getpass.getpass("again: ") != password:
            print("sshtrail: error: the passwords differ", file=sys.stderr)
            return 2
    else:
        password = sys.stdin.readline().rstrip("\n")
    if len(password) < 8:
        print("sshtrail: error: use at least 8 characters", file=sys.stderr)
        return 2
    print(hash_password(password))
    return 0
