"""A webhook receiver on loopback: what was POSTed to it, and with which headers."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from sshtrail.broker import free_port


class Receiver:
    """Answers every POST with 204 once started; down (nothing listening) before."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/hook"
        self.bodies: list[dict[str, Any]] = []
        #: The ``Idempotency-Key`` of each POST, in the order of ``bodies``.
        self.keys: list[str | None] = []
        self._server: ThreadingHTTPServer | None = None

    def start(self) -> None:
        bodies, keys = self.bodies, self.keys

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                keys.append(self.headers.get("Idempotency-Key"))
                bodies.append(json.loads(self.rfile.read(length)))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
