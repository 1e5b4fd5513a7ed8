"""Running the gateway: build its parts from the settings, serve, shut down gracefully."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import resource
import signal
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncssh

from producer import keys
from producer.connection import Connection
from producer.controllistener import ControlListener
from producer.gateway import Gateway, server_options
from producer.loopwatch import LoopWatch
from producer.metrics import GatewayCollector
from producer.metrics import serve as serve_metrics
from producer.policy import Policy
from producer.recording import InProcessRecording, Recording
from producer.recordlink import ProcessRecording
from producer.sessions import LiveSessions
from producer.sharedcounts import SharedCounts
from producer.sharedfailures import SharedFailures
from producer.sharedpending import SharedPending
from producer.upstream import TargetConnector
from sshtrail.errors import ConfigError, SshtrailError
from sshtrail.escrow import Sealer, parse_public_key
from sshtrail.settings import Settings
from sshtrail.statedir import secure

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class WorkerPlace:
    """Which of a gateway's ``workers`` this process is (``producer/workers.py``)."""

    index: int
    workers: int
    #: The session counts every worker shares (``SharedCounts.create``).
    cells: Any
    #: The failed logins and the connections waiting to log in every worker shares
    #: (``producer/sharedfailures.py``, ``producer/sharedpending.py``), and the key
    #: their buckets are hashed with; None: this worker's own.
    failures: Any = None
    pending: Any = None
    salt: bytes = b""

    def shared_failures(self) -> SharedFailures | None:
        if self.failures is None:
            return None
        return SharedFailures(self.failures, self.salt, self.workers, self.index)

    def shared_pending(self) -> SharedPending | None:
        if self.pending is None:
            return None
        return SharedPending(self.pending, self.salt, self.workers, self.index)

    def spool_dir(self, base: Path) -> Path:
        """Worker 0 keeps the single process's spool, so a gateway that moves between
        one worker and several finds its undelivered chunks."""
        return base if self.index == 0 else base / f"worker-{self.index}"

    def state_name(self, name: str) -> str:
        """A file of the state directory that is this worker's alone."""
        return name if self.index == 0 else f"{name}.worker-{self.index}"


class GatewayService:
    """The gateway process: SSH server and recording. ``run`` until stopped.

    With ``place``, one of several workers accepting on the same port
    (``SO_REUSEPORT``) under a supervisor (``producer/workers.py``): its own
    spool directory and lock file, session counts shared with the others, and
    ``/metrics`` on a local port of its own that the supervisor sums.
    """

    def __init__(self, settings: Settings, place: WorkerPlace | None = None) -> None:
        gw = settings.gateway
        self.settings = settings
        self.place = place
        secure(settings.state_path)
        self.host_key_path = settings.state_file(gw.host_key, "gateway/ssh_host_ed25519_key")
        self.signing_key_path = settings.state_file(gw.signing_key, "gateway/recording_ed25519_key")
        client_keys = {
            t.name: keys.client_key(_path(t.key, t.name), t.name) for t in settings.targets
        }
        self.policy = Policy(settings, client_keys)
        self.host_key = keys.host_key(self.host_key_path)
        self.signer = keys.signing_key(self.signing_key_path)
        spool_dir = settings.state_file(gw.spool.dir, "spool")
        if place is not None:
            spool_dir = place.spool_dir(spool_dir)
        self.recording: Recording
        if gw.recorder == "thread":
            self.recording = InProcessRecording(settings, spool_dir, self.signer)
        else:
            self.recording = ProcessRecording(
                settings, spool_dir, self.signer, self.signing_key_path, fork=place is None
            )
        connector = TargetConnector(
            self.policy,
            settings.state_path / "gateway" / "known_hosts",
            gw.connect_timeout_s,
            gw.target_ciphers,
        )
        if not gw.record:
            log.warning("gateway.record is false: NOTHING IS RECORDED (benchmarks only)")
        sealer = Sealer(parse_public_key(gw.escrow_public_key)) if gw.escrow_public_key else None
        if sealer is None:
            log.warning(
                "no gateway.escrow_public_key: input typed without echo is masked and only "
                "counted; commands typed blind cannot be revealed (docs/security.md)"
            )
        self.gateway = Gateway(
            settings,
            policy=self.policy,
            signer=self.signer,
            recording=self.recording,
            connector=connector,
            sealer=sealer,
            failures=None if place is None else place.shared_failures(),
            pending=None if place is None else place.shared_pending(),
            sessions=LiveSessions(
                None
                if place is None
                else SharedCounts(
                    place.cells, [o.name for o in settings.operators], place.workers, place.index
                )
            ),
        )
        self._stop = asyncio.Event()
        self.port = gw.port
        #: Where ``/metrics`` is served once running (``gateway.metrics_port``); 0: off.
        self.metrics_port = 0

    def stop(self) -> None:
        self._stop.set()

    async def run(self, ready: Callable[[GatewayService], None] = lambda _: None) -> None:
        """Serve until :meth:`stop` (or SIGTERM/SIGINT), then shut down gracefully."""
        gw = self.settings.gateway
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self.stop)
        _raise_file_limit(2 * gw.max_sessions + 64)
        if isinstance(self.recording, ProcessRecording):
            self.recording.on_lost = self.gateway.recording_lost
        # Begun first (a recorder process is forked before any thread starts), ready
        # while the gateway starts listening.
        recording = self.recording.start(loop, self.gateway.recording_behind)
        try:
            server = await asyncssh.create_server(
                lambda: Connection(self.gateway),
                gw.listen,
                gw.port,
                reuse_port=self.place is not None,
                **server_options(self.host_key, gw.ciphers),
            )
        except (ValueError, OSError) as exc:
            with contextlib.suppress(SshtrailError):
                await recording
            await self.recording.stop(0)
            if isinstance(exc, ValueError):  # asyncssh: an algorithm it does not know
                raise ConfigError(str(exc), key="gateway.ciphers") from None
            raise ConfigError(
                f"cannot listen on {gw.listen}:{gw.port}: {exc.strerror}", key="gateway.port"
            ) from None
        try:
            await recording
        except SshtrailError:
            server.close()
            raise
        self.gateway.recording_started.set()
        self.port = server.sockets[0].getsockname()[1]
        watch = self._serve_metrics()
        listener = ControlListener(
            self.settings, self.gateway.sessions, self.gateway.signer, loop, self._locks_file()
        )
        self.gateway.control = listener
        listener.start()
        idle = loop.create_task(self._close_idle())
        alive = loop.create_task(self._keep_alive())
        spool_watch = loop.create_task(self.gateway.watch_spool())
        ready(self)
        if watch is not None:  # from here on: serving, start-up's collection done
            watch.reset()
        await self._stop.wait()
        log.info(
            "stopping: no new connections; waiting up to %d s for %d sessions",
            gw.shutdown_timeout_s,
            len(self.gateway.sessions),
        )
        self.gateway.admission.accepting = False
        server.close()
        idle.cancel()
        alive.cancel()
        spool_watch.cancel()
        if watch is not None:
            watch.stop()
        await self._drain_sessions(gw.shutdown_timeout_s)
        await loop.run_in_executor(None, listener.stop)
        self.gateway.stop()
        delivered = await self.recording.stop(10.0)  # the last chunks spooled, then published
        log.info(
            "stopped; %s",
            "every chunk is in Kafka"
            if delivered
            else "undelivered chunks stay in the spool for the next start",
        )

    def _serve_metrics(self) -> LoopWatch | None:
        """Serve ``/metrics`` if configured, with the loop watched (only where someone
        can read it: the watch wakes 100 times a second)."""
        gw = self.settings.gateway
        if not gw.metrics_port:
            return None
        watch = LoopWatch()
        watch.start()
        collector = GatewayCollector(self.gateway, self.recording, watch)
        if self.place is None:
            self.metrics_port = serve_metrics(collector, gw.metrics_listen, gw.metrics_port)
        else:  # read and summed by the supervisor, which serves gateway.metrics_port
            self.metrics_port = serve_metrics(collector, "127.0.0.1", 0)
        return watch

    def _locks_file(self) -> Path:
        """Where the control listener keeps the locks: a file per worker."""
        name = "control/locks.json"
        return self.settings.state_file(
            "", name if self.place is None else self.place.state_name(name)
        )

    async def _close_idle(self) -> None:
        timeout = self.settings.gateway.idle_timeout_s
        if timeout:
            await self.gateway.sessions.close_idle(timeout)

    async def _keep_alive(self) -> None:
        every = self.settings.gateway.keepalive_s
        if every:
            await self.gateway.sessions.keep_alive(every)

    async def _drain_sessions(self, timeout: float) -> None:
        loop = asyncio.get_running_loop()
        sessions = self.gateway.sessions
        deadline = loop.time() + timeout
        while sessions and loop.time() < deadline:
            await asyncio.sleep(0.1)
        sessions.close_all("the gateway is shutting down")
        deadline = loop.time() + 5
        while sessions and loop.time() < deadline:
            await asyncio.sleep(0.05)


def _raise_file_limit(wanted: int) -> None:
    """Each session holds two sockets (operator, target): lift the soft descriptor limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        soft = hard
    if soft != resource.RLIM_INFINITY and soft < wanted:
        log.warning(
            "open file limit %d is below what gateway.max_sessions needs (%d); "
            "raise it (ulimit -n, LimitNOFILE=) or lower max_sessions",
            soft,
            wanted,
        )


def _path(configured: str, target: str) -> Path:
    if not configured:
        raise ConfigError(
            "no key file: the gateway needs a private key to log in with",
            key=f"targets.{target}.key",
        )
    return Path(configured).expanduser()
