"""``sshtrail demo-target``: the demo SSH target ``sshtrail up --demo`` starts, on loopback."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal

from producer import demo
from sshtrail.errors import ConfigError
from sshtrail.settings import Settings


def run(args: argparse.Namespace, _settings: Settings) -> int:
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
