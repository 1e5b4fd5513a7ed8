"""A loopback TCP proxy that can stop passing bytes towards the client, as a stalled
network or a client that stops reading would -- or send each new connection to the
next of several upstreams, as a man in the middle switching hosts would."""

from __future__ import annotations

import asyncio
import contextlib
import threading

from sshtrail.broker import free_port


class StallingProxy:
    """Forwards 127.0.0.1:``port`` to ``upstream`` (each new connection to the next of
    ``upstream_ports``, in turn, when several are given); :meth:`stall` holds the way back."""

    def __init__(self, upstream_port: int, *more_ports: int) -> None:
        self.upstream_ports = [upstream_port, *more_ports]
        self._connections = 0
        self.port = free_port()
        self._flowing = threading.Event()
        self._flowing.set()
        self._loop = asyncio.new_event_loop()
        self._started = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> StallingProxy:
        self._thread.start()
        if not self._started.wait(10):
            raise RuntimeError("the proxy did not start")
        return self

    def __exit__(self, *_: object) -> None:
        self._flowing.set()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def stall(self) -> None:
        """Stop reading from upstream: its bytes pile up in the kernel, then in the sender."""
        self._flowing.clear()

    def resume(self) -> None:
        self._flowing.set()

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        server = self._loop.run_until_complete(
            asyncio.start_server(self._serve, "127.0.0.1", self.port)
        )
        self._started.set()
        self._loop.run_forever()
        server.close()

    async def _serve(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        port = self.upstream_ports[self._connections % len(self.upstream_ports)]
        self._connections += 1
        up_r, up_w = await asyncio.open_connection("127.0.0.1", port)
        await asyncio.gather(
            self._pipe(client_r, up_w, gated=False), self._pipe(up_r, client_w, gated=True)
        )

    async def _pipe(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, gated: bool
    ) -> None:
        with contextlib.suppress(ConnectionError):
            while True:
                while gated and not self._flowing.is_set():
                    await asyncio.sleep(0.05)
                data = await reader.read(65536)
                if not data:
                    break
                writer.write(data)
                await writer.drain()
        writer.close()
