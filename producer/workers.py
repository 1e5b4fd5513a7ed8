"""The gateway on every core: a supervisor and ``gateway.workers`` worker processes.

Each worker is a whole gateway (``producer/service.py``) -- its own event
loop, recorders, chunk writer, spool directory, Kafka producer and control
listener -- listening on the same address and port with ``SO_REUSEPORT``: the
kernel spreads new connections over the workers' listening sockets, and a
connection stays with the worker that accepted it. Nothing on the data path
crosses a process boundary; what is per gateway is shared this way:

* terminate and lock: every worker reads the whole control topic (it uses no
  consumer group); the one holding a session ends it;
* session limits: counters in shared memory (``producer/sharedcounts.py``);
* failed logins per address and per operator name, and connections waiting
  to log in: counted in shared memory too (``producer/sharedfailures.py``,
  ``producer/sharedpending.py``), so a guesser gets no more guesses, nor an
  address more waiting connections, for the kernel spreading its connections;
* ``/metrics``: the supervisor sums the workers' (``producer/metricsum.py``);
* the TOFU pin: written under a file lock (``producer/upstream.py``);
* the host and recording keys: created here, before any worker starts.

A worker that dies (kill -9, an out-of-memory kill, a crash) takes its
sessions with it -- their operators see the connection close -- and is
replaced with the same index: its successor opens the same spool directory
and recovers it as a gateway restarted after kill -9 does (``producer/
spool.py``, ``producer/tails.py``): what Kafka had not acknowledged is
published, and the sessions the dead worker left open get their signed end.

Why ``SO_REUSEPORT`` rather than one acceptor handing sockets to workers:
handing over costs a ``sendmsg`` and a wake-up per connection and puts one
process in every connection's path, and a dead acceptor stops all logins;
with ``SO_REUSEPORT`` the kernel balances with no process in between
(docs/decisions.md, "Gateway workers").

Workers are started with ``spawn``, not forked: the supervisor may have
threads (``/metrics``), and a child forked from it would inherit their locks.
(A ``forkserver`` would import the gateway once instead of once per worker,
but it outlived a supervisor killed with -9, and its workers with it.)
"""

from __future__ import annotations

import asyncio
import ctypes
import gc
import logging
import multiprocessing
import os
import signal
import socket
import threading
import time
from collections.abc import Callable
from multiprocessing.connection import Connection as Pipe
from multiprocessing.connection import wait
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any

import msgspec
from prometheus_client import CollectorRegistry, start_http_server

from producer.metricsum import WorkersCollector
from producer.service import GatewayService, WorkerPlace
from producer.sharedcounts import SharedCounts
from producer.sharedfailures import new_salt, new_table
from producer.sharedpending import SharedPending, new_cells
from sshtrail.errors import ConfigError
from sshtrail.settings import GatewaySettings, Settings

log = logging.getLogger(__name__)

#: How long a worker may take from its start to listening.
START_TIMEOUT_S = 60.0
#: A worker that keeps dying is started again at most this often.
RESTART_EVERY_S = 1.0
_PR_SET_PDEATHSIG = 1


def worker_count(gw: GatewaySettings) -> int:
    """``gateway.workers``, with 0 read as the cores this process may run on."""
    return gw.workers or len(os.sched_getaffinity(0))


def unstarted_spools(spool: Path, workers: int) -> list[Path]:
    """Spools of workers beyond ``workers`` (it was lowered) that still hold segments:
    nothing publishes them until it is raised again."""
    found = []
    for directory in sorted(spool.glob("worker-*")):
        index = directory.name.removeprefix("worker-")
        if index.isdigit() and int(index) >= workers and any(directory.glob("segment-*")):
            found.append(directory)
    return found


def warn_of_unstarted_spools(settings: Settings, workers: int) -> None:
    spool = settings.state_file(settings.gateway.spool.dir, "spool")
    for directory in unstarted_spools(spool, workers):
        log.warning(
            "%s holds chunks of a worker not started with gateway.workers = %d: they are "
            "not published until workers is raised again (docs/operations.md, Workers)",
            directory,
            workers,
        )


class Supervisor:
    """Starts the workers, replaces any that dies, sums their metrics, stops them."""

    def __init__(self, settings: Settings, workers: int) -> None:
        # Validates the settings and creates the keys once, here: not in N racing workers.
        probe = GatewayService(settings)
        self.host_key = probe.host_key
        self.signing_key_path = probe.signing_key_path
        self.settings = settings
        self.workers = workers
        self.port = settings.gateway.port
        self.metrics_port = 0
        self.restarts = 0
        self._context = multiprocessing.get_context("spawn")
        operators = [o.name for o in settings.operators]
        self._cells = SharedCounts.create(operators, workers)
        self._counts = SharedCounts(self._cells, operators, workers, 0)
        # Never zeroed when a worker is replaced: its failures still count.
        self._failures = new_table(workers)
        self._salt = new_salt()
        self._pending_cells = new_cells(workers)
        self._pending = SharedPending(self._pending_cells, self._salt, workers, 0)
        self._processes: dict[int, BaseProcess] = {}
        self._pipes: dict[int, Pipe] = {}
        self._worker_metrics: dict[int, int] = {}
        self._started_at: dict[int, float] = {}
        self._stop = threading.Event()
        self._reserved: socket.socket | None = None

    def pids(self) -> dict[int, int]:
        """Each worker's process id, by index."""
        return {k: p.pid for k, p in self._processes.items() if p.pid is not None}

    def stop(self) -> None:
        self._stop.set()

    def run(self, ready: Callable[[Supervisor], None] = lambda _: None) -> int:
        """Start every worker, serve until SIGTERM/SIGINT, stop them; the exit status."""
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: self._stop.set())
        self._reserve_port()
        for index in range(self.workers):
            self._start(index)
        for index in range(self.workers):
            if not self._await_ready(index):
                self._stop_all()
                return 1
        gw = self.settings.gateway
        if gw.metrics_port:
            registry = CollectorRegistry()
            registry.register(
                WorkersCollector(
                    lambda: list(self._worker_metrics.values()), lambda: self.restarts, self.workers
                )
            )
            server, _thread = start_http_server(gw.metrics_port, gw.metrics_listen, registry)
            self.metrics_port = server.server_port
        ready(self)
        log.info("gateway supervising %d workers: %s", self.workers, self.pids())
        while not self._stop.is_set():
            self._watch()
        self._stop_all()
        return 0

    # -- workers ------------------------------------------------------------------------

    def _reserve_port(self) -> None:
        """Port 0 (any): bind one here, so every worker listens on the same one; kept
        bound (not listening: it is given no connections) until the gateway stops."""
        if self.port:
            return
        gw = self.settings.gateway
        family = socket.AF_INET6 if ":" in gw.listen else socket.AF_INET
        reserved = socket.socket(family, socket.SOCK_STREAM)
        reserved.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        try:
            reserved.bind((gw.listen, 0))
        except OSError as exc:
            reserved.close()
            raise ConfigError(
                f"cannot listen on {gw.listen}: {exc.strerror}", key="gateway.listen"
            ) from None
        self._reserved = reserved
        self.port = reserved.getsockname()[1]
        gateway = msgspec.structs.replace(gw, port=self.port)
        self.settings = msgspec.structs.replace(self.settings, gateway=gateway)

    def _start(self, index: int) -> None:
        self._counts.zero(index)  # a dead worker's sessions ended with it
        self._pending.zero(index)  # and its connections waiting to log in
        receiving, sending = self._context.Pipe(duplex=False)
        place = WorkerPlace(
            index, self.workers, self._cells, self._failures, self._pending_cells, self._salt
        )
        process = self._context.Process(
            target=run_worker,
            args=(self.settings, place, sending, logging.getLogger().level, os.getpid()),
            name=f"sshtrail-gateway-worker-{index}",
        )
        process.start()
        sending.close()
        self._processes[index] = process
        self._pipes[index] = receiving
        self._started_at[index] = time.monotonic()
        self._worker_metrics.pop(index, None)

    def _await_ready(self, index: int) -> bool:
        pipe, process = self._pipes[index], self._processes[index]
        if not pipe.poll(START_TIMEOUT_S):
            log.error("gateway worker %d did not start within %d s", index, START_TIMEOUT_S)
            return False
        try:
            self._take(index, pipe.recv())
        except EOFError:
            process.join(5)
            log.error("gateway worker %d stopped at start (exit %s)", index, process.exitcode)
            return False
        return True

    def _take(self, index: int, message: Any) -> None:
        _port, metrics_port = message
        if metrics_port:
            self._worker_metrics[index] = metrics_port
        log.info("gateway worker %d (pid %s) listening", index, self._processes[index].pid)

    def _watch(self) -> None:
        """Wait up to 0.5 s for a worker to die or say it listens; replace the dead."""
        by_sentinel = {p.sentinel: k for k, p in self._processes.items()}
        by_pipe = {id(pipe): k for k, pipe in self._pipes.items()}
        ready = wait([*by_sentinel, *self._pipes.values()], timeout=0.5)
        for item in ready:
            if not isinstance(item, Pipe):
                continue
            index = by_pipe[id(item)]
            try:
                self._take(index, item.recv())
            except EOFError:  # it died before it listened: its sentinel says so too
                del self._pipes[index]
        for sentinel in [s for s in ready if isinstance(s, int)]:
            index = by_sentinel[sentinel]
            process = self._processes[index]
            process.join()
            if self._stop.is_set():
                return
            log.error(
                "gateway worker %d (pid %s) died (exit %s): its sessions ended; starting "
                "its successor, which publishes what its spool holds",
                index,
                process.pid,
                process.exitcode,
            )
            wait_s = self._started_at[index] + RESTART_EVERY_S - time.monotonic()
            if wait_s > 0:
                self._stop.wait(wait_s)
            self.restarts += 1
            self._start(index)

    def _stop_all(self) -> None:
        """SIGTERM every worker (each drains its sessions as a single gateway does)."""
        for process in self._processes.values():
            if process.is_alive() and process.pid is not None:
                os.kill(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + self.settings.gateway.shutdown_timeout_s + 30
        for index, process in self._processes.items():
            process.join(max(deadline - time.monotonic(), 0.1))
            if process.is_alive():
                log.error("gateway worker %d did not stop; killing it", index)
                process.kill()
                process.join(5)
        if self._reserved is not None:
            self._reserved.close()


def run_worker(
    settings: Settings, place: WorkerPlace, ready: Pipe, level: int, supervisor: int
) -> None:
    """A worker process's life: one gateway until SIGTERM (or its supervisor's death)."""
    # Ended with its supervisor: an orphan would go on accepting on the port.
    ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != supervisor:  # it died before the line above
        return
    logging.basicConfig(
        level=level,
        format=f"%(asctime)s %(levelname)-7s worker-{place.index} %(name)s: %(message)s",
    )
    logging.getLogger("asyncssh").setLevel(logging.WARNING)  # it logs commands at INFO
    service = GatewayService(settings, place)

    def listening(running: GatewayService) -> None:
        settle_garbage(settings.gateway.gc_thresholds)
        ready.send((running.port, running.metrics_port))
        ready.close()

    asyncio.run(service.run(listening))


def settle_garbage(thresholds: list[int]) -> None:
    """After start-up: move what it allocated out of the collector's sight (it lives as
    long as the process: every full collection would walk it again) and collect at
    ``thresholds`` (``gateway.gc_thresholds``)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*thresholds)
