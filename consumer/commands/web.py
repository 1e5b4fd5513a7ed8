"""``sshtrail web``: the auditors' web console, served until Ctrl-C or SIGTERM."""

from __future__ import annotations

import argparse
import logging
import sys

import uvicorn

from consumer.web.app import create_app
from sshtrail.db import shown_url
from sshtrail.errors import ConfigError
from sshtrail.settings import Settings

log = logging.getLogger(__name__)


def run(args: argparse.Namespace, settings: Settings) -> int:
    web = settings.web
    listen = args.listen or web.listen
    port = args.port or web.port
    tls = bool(web.tls_cert)
    if tls != bool(web.tls_key):
        raise ConfigError("web.tls_cert and web.tls_key go together: set both or neither")
    for name, path in (("web.tls_cert", web.tls_cert), ("web.tls_key", web.tls_key)):
        if path:
            try:
                with open(path, "rb"):
                    pass
            except OSError as exc:
                raise ConfigError(f"cannot read {path}: {exc.strerror}", key=name) from None
    if web.oidc.enabled and not web.oidc.groups:
        log.warning(
            "web.oidc has no [[web.oidc.groups]]: everyone who signs in through the "
            "identity provider is refused (docs/operations.md, 'Sign in with your "
            "identity provider')"
        )
    if not settings.auditors and not web.oidc.enabled:
        log.warning(
            "no auditors are configured: nobody can sign in (add [[auditors]] to the settings; "
            "docs/operations.md, 'Web console')"
        )
    if not tls and listen not in ("127.0.0.1", "::1", "localhost"):
        log.warning(
            "the console listens on %s without TLS: passwords and recordings cross the "
            "network in the clear unless a TLS proxy is in front (web.tls_cert, web.tls_key)",
            listen,
        )
    app = create_app(settings)
    scheme = "https" if tls else "http"
    shown = f"[{listen}]" if ":" in listen else listen
    print(
        f"web console on {scheme}://{shown}:{port}/ over {shown_url(settings.database_url)}",
        file=sys.stderr,
        flush=True,
    )
    config = uvicorn.Config(
        app,
        host=listen,
        port=port,
        ssl_certfile=web.tls_cert or None,
        ssl_keyfile=web.tls_key or None,
        proxy_headers=False,  # the console reads a trusted proxy's headers itself
        server_header=False,
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=5,
        h11_max_incomplete_event_size=64 << 10,
    )
    uvicorn.Server(config).run()
    return 0
