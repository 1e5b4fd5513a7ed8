"""How two gateway workers share a port: ``SO_REUSEPORT`` sockets, or one shared socket.

Two processes accept on the same loopback port, either each with a socket of
its own bound with ``SO_REUSEPORT`` (what ``gateway.workers`` does) or both
on one listening socket (each woken, one wins ``accept``); this process
connects ``--connections`` times, one after another, and prints connections
per second, how the workers split them and the slowest connect. ``--busy-ms``
makes each worker spin that long after each accept (a loaded event loop).
The figures decided docs/decisions.md, "Gateway workers".

    python -m bench.accept_spread [--connections 2000] [--busy-ms 0]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import socket
import time
from multiprocessing.queues import Queue
from typing import Any

#: A worker ends once no connection came for this long.
QUIET_S = 3.0


def _listen_reusing(port: int) -> socket.socket:
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind(("127.0.0.1", port))
    sock.listen(512)
    return sock


def _worker(shared: socket.socket | None, port: int, out: Queue[Any], busy_s: float) -> None:
    sock = shared if shared is not None else _listen_reusing(port)
    sock.settimeout(QUIET_S)
    out.put("ready")
    accepted = 0
    try:
        while True:
            conn, _ = sock.accept()
            accepted += 1
            conn.close()
            spin_until = time.perf_counter() + busy_s
            while time.perf_counter() < spin_until:
                pass
    except OSError:  # the quiet timeout: the run is over
        pass
    out.put((os.getpid(), accepted))


def run(mode: str, connections: int, busy_s: float) -> str:
    """One run of ``mode`` (``reuseport`` or ``shared``); its line of figures."""
    context = multiprocessing.get_context("fork")  # the shared socket is inherited
    out: Queue[Any] = context.Queue()
    probe = socket.socket()
    probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    shared = None
    if mode == "shared":
        probe.listen(512)
        shared = probe
    workers = [context.Process(target=_worker, args=(shared, port, out, busy_s)) for _ in range(2)]
    for worker in workers:
        worker.start()
    for _ in workers:
        out.get()
    started, worst = time.perf_counter(), 0.0
    for _ in range(connections):
        began = time.perf_counter()
        with socket.create_connection(("127.0.0.1", port)) as conn:
            conn.recv(1)
        worst = max(worst, time.perf_counter() - began)
    elapsed = time.perf_counter() - started
    split = sorted(out.get()[1] for _ in workers)
    for worker in workers:
        worker.join()
    probe.close()
    return (
        f"{mode:9s} busy {busy_s * 1000:.1f} ms: {connections / elapsed:7.0f} connections/s, "
        f"split {split}, slowest connect {worst * 1000:.1f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=2000)
    parser.add_argument("--busy-ms", type=float, default=0.0)
    args = parser.parse_args()
    if args.connections < 1 or args.busy_ms < 0:
        parser.error("--connections must be at least 1 and --busy-ms not negative")
    for mode in ("reuseport", "shared"):
        print(run(mode, args.connections, args.busy_ms / 1000), flush=True)


if __name__ == "__main__":
    main()
