"""``gateway.recorder = "process"``: the relay's side of the recorder process.

:class:`ProcessRecording` starts the recorder process (``producer/
recorderprocess.py``) and hands it every finished chunk as a frame on a
Unix stream socket: the events encoded once (MessagePack) and written with
one ``sendmsg`` per chunk from the event loop, which is all the recording
costs the relay's process. What the socket cannot take at once waits in a
queue here; beyond :data:`MAX_QUEUED` bytes every channel is paused
(``on_behind``) until the recorder has caught up -- the recorder reads only
as fast as it spools, so a slow disk or a stalled recorder holds the relay
back instead of growing anything without bound.

The recorder process dying (an out-of-memory kill, a bug) is told at once by
its sentinel. The chunks it had not spooled are gone, so the sessions whose
chains it held cannot be continued: they are closed -- their operators see
the connection end, as when a gateway worker dies -- and a new recorder
process is started at once, which signs the end of each of them after what
the spool holds (``producer/tails.py``). New sessions go on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import socket
import sys
import threading
import uuid
from collections import deque
from collections.abc import Awaitable, Callable
from multiprocessing.connection import Connection as Pipe
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from producer.recorderprocess import FIGURES, FINAL, FRAME, STOP, STOP_BODY, Plan, run_recorder
from producer.recording import Behind, Figures
from producer.spool import SpoolError
from sshtrail.events import Event
from sshtrail.settings import Settings
from sshtrail.wire import encode_events, shape_problem

log = logging.getLogger(__name__)

#: Bytes queued for the recorder process beyond which every channel is paused.
MAX_QUEUED = 16 << 20
#: The socket's buffers (the kernel may grant less: ``net.core.wmem_max``).
SOCKET_BUFFER = 4 << 20
#: How long the recorder process may take to open the spool and say it is ready.
START_TIMEOUT_S = 120.0
#: What :attr:`ProcessRecording.pending` says before the first recorder process is
#: ready: the spool's state is unknown, and weighed as beyond the reserve (no new
#: session starts, recorded or not, until it is known).
UNKNOWN_PENDING = 1 << 62
#: How long a stop waits for the recorder process to take what is queued.
HAND_OVER_S = 30.0
#: Buffers given to one ``sendmsg``.
_BATCH = 64


class ProcessRecording:
    """The recording of one gateway process, done by a recorder process of its own."""

    def __init__(
        self,
        settings: Settings,
        directory: Path,
        signer: Ed25519PrivateKey,
        signing_key_path: Path,
        on_lost: Callable[[str], None] = lambda _reason: None,
        *,
        fork: bool = True,
    ) -> None:
        """``fork``: start the first recorder process by forking this one (see
        :meth:`_launch`); False for a supervised worker, whose inherited descriptors
        (its supervisor's sentinel) a forked child would hold past the worker's death."""
        self._settings = settings
        self._fork = fork
        self._directory = directory
        self._signing_key_path = signing_key_path
        self._public_key = signer.public_key().public_bytes_raw()
        #: Told when the recorder process died and its sessions must end.
        self.on_lost = on_lost
        self._figures: Any = multiprocessing.get_context("spawn").RawArray("d", len(FIGURES))
        self._loop: asyncio.AbstractEventLoop | None = None
        self._on_behind: Behind = lambda _behind: None
        self._process: BaseProcess | None = None
        self._status: Pipe | None = None
        self._socket: socket.socket | None = None
        self._queue: deque[memoryview] = deque()
        self._queued = 0
        self._behind = False
        self._writing = False
        #: Sessions with chunks handed to this recorder process and no last chunk yet.
        self._open: set[uuid.UUID] = set()
        #: Sessions whose recorder process died: their later chunks have no chain.
        self._orphans: set[uuid.UUID] = set()
        self._stopping = False
        #: Whether a recorder process has said it is ready (its figures are real).
        self._started = False
        self._lost = 0
        self.restarts = 0

    # -- lifecycle ----------------------------------------------------------------

    def start(self, loop: asyncio.AbstractEventLoop, on_behind: Behind) -> Awaitable[None]:
        self._loop, self._on_behind = loop, on_behind
        return loop.create_task(self._until_ready(*self._launch()))

    def _launch(self) -> tuple[BaseProcess, socket.socket, Pipe]:
        """Start a recorder process now (no await: at the gateway's start, before
        anything else starts a thread); its process, the relay's side of its socket,
        and the pipe it answers on."""
        relay, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        for side, option in ((relay, socket.SO_SNDBUF), (child, socket.SO_RCVBUF)):
            with contextlib.suppress(OSError):
                side.setsockopt(socket.SOL_SOCKET, option, SOCKET_BUFFER)
        # Forked while this process has no thread but the loop's (at the gateway's start:
        # the recorder is ready at once, with nothing imported again); spawned after that
        # (a restart), since a fork would inherit other threads' locks half-held, and in
        # a supervised worker (the fork would hold the worker's descriptors).
        forked = self._fork and threading.active_count() == 1
        context = (
            multiprocessing.get_context("fork") if forked else multiprocessing.get_context("spawn")
        )
        receiving, sending = context.Pipe(duplex=False)
        plan = Plan(
            self._settings,
            self._directory,
            self._signing_key_path,
            self._public_key,
            log_level=logging.getLogger().level,
        )
        process = context.Process(
            target=run_recorder,
            args=(plan, child, sending, self._figures, relay if forked else None),
            name="sshtrail-gateway-recorder",
        )
        if forked:  # what is buffered is the parent's to write, not written twice
            sys.stdout.flush()
            sys.stderr.flush()
        process.start()
        child.close()
        sending.close()
        return process, relay, receiving

    async def _until_ready(
        self, process: BaseProcess, relay: socket.socket, receiving: Pipe
    ) -> None:
        """Wait for the recorder process to say it is ready; then send it what waits."""
        loop = asyncio.get_running_loop()
        word = await loop.run_in_executor(None, _first_word, receiving, process)
        if word[0] != "ready":
            relay.close()
            receiving.close()
            await loop.run_in_executor(None, process.join, 5)
            raise SpoolError(f"the recorder process did not start: {word[1]}")
        relay.setblocking(False)
        self._started = True
        self._process, self._status, self._socket = process, receiving, relay
        loop.add_reader(process.sentinel, self._died)
        log.info("recorder process %s started (spool %s)", process.pid, self._directory)
        if self._queue:
            self._send()

    async def stop(self, publish_s: float) -> bool:
        """Hand over what is queued (for up to :data:`HAND_OVER_S`), tell the recorder
        process to publish for up to ``publish_s``, close the socket, wait for it to
        spool everything, publish and end. True when every chunk is in Kafka; chunks
        handed over later are not recorded (logged and counted as lost)."""
        self._stopping = True
        process, status = self._process, self._status
        if process is None or status is None or self._socket is None:
            self._drop_queue("no recorder process is running (it is starting again)")
            return False
        loop = asyncio.get_running_loop()
        loop.remove_reader(process.sentinel)
        stop = FRAME.pack(bytes(16), 0, STOP, STOP_BODY.size) + STOP_BODY.pack(publish_s)
        self._queue.append(memoryview(stop))
        self._queued += len(stop)
        deadline = loop.time() + HAND_OVER_S
        while self._queue and process.is_alive() and loop.time() < deadline:
            self._send()
            await asyncio.sleep(0.01)
        self._drop_queue(f"the recorder process took nothing for {HAND_OVER_S:.0f} s")
        self._close_socket()
        word = await loop.run_in_executor(None, _last_word, status, process, publish_s + 60)
        await loop.run_in_executor(None, process.join, 10)
        status.close()
        self._process = self._status = None
        return word == ("stopped", True) and not self._lost

    def _drop_queue(self, why: str) -> None:
        """Give up what is still queued (at a stop), counting its chunks as lost."""
        if not self._queue:
            return
        chunks = (len(self._queue) + 1) // 2  # a header and its events a chunk
        self._lost += chunks
        log.error("%d chunks (%d bytes) not recorded: %s", chunks, self._queued, why)
        self._queue.clear()
        self._queued = 0

    # -- the data path (event loop) ---------------------------------------------------

    def submit(
        self, session_id: uuid.UUID, seq: int, events: list[Event], final: bool, size: int
    ) -> None:
        if session_id in self._orphans:
            if final:
                self._orphans.discard(session_id)
            return  # its chain died with a recorder process; its end is signed from the spool
        if self._stopping and self._socket is None:
            self._lost += 1
            log.error(
                "session %s: chunk %d not recorded: the recording has stopped", session_id, seq
            )
            return
        problem = shape_problem(session_id, seq, events)
        try:
            if problem:  # a bug in the recorder, caught where it happens
                raise ValueError(f"it breaks the wire format: {problem}")
            encoded = encode_events(events)
        except Exception:  # a bug in one session must not stop every other's recording
            self._lost += 1
            log.exception("session %s: chunk %d lost, it could not be encoded", session_id, seq)
            return
        if final:
            self._open.discard(session_id)
        else:
            self._open.add(session_id)
        header = FRAME.pack(session_id.bytes, seq, FINAL if final else 0, len(encoded))
        self._queue.append(memoryview(header))
        self._queue.append(memoryview(encoded))
        self._queued += len(header) + len(encoded)
        if not self._writing:
            self._send()
        if not self._behind and self._queued > MAX_QUEUED:
            self._behind = True
            self._on_behind(True)

    def _send(self) -> None:
        """Write what is queued until the socket takes no more; then wait for it."""
        sock, loop = self._socket, self._loop
        if sock is None or loop is None:
            return  # a recorder process is starting: sent once it has
        while self._queue:
            batch = [self._queue[i] for i in range(min(_BATCH, len(self._queue)))]
            try:
                sent = sock.sendmsg(batch)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:  # the recorder process died; its sentinel says so
                return
            self._queued -= sent
            while sent:
                head = self._queue[0]
                if sent >= len(head):
                    sent -= len(head)
                    self._queue.popleft()
                else:
                    self._queue[0] = head[sent:]
                    sent = 0
        if self._queue and not self._writing:
            loop.add_writer(sock.fileno(), self._send)
            self._writing = True
        elif not self._queue and self._writing:
            loop.remove_writer(sock.fileno())
            self._writing = False
        if self._behind and self._queued <= MAX_QUEUED // 2:
            self._behind = False
            self._on_behind(False)

    def _close_socket(self) -> None:
        sock = self._socket
        if sock is None:
            return
        if self._writing and self._loop is not None:
            self._loop.remove_writer(sock.fileno())
            self._writing = False
        sock.close()
        self._socket = None

    def _died(self) -> None:
        """The recorder process ended on its own: end its sessions, start another."""
        process, loop = self._process, self._loop
        if process is None or loop is None:
            return
        loop.remove_reader(process.sentinel)
        process.join(1.0)  # it has ended: its sentinel said so
        log.error(
            "the recorder process (pid %s) died (exit %s): %d sessions end, their chunks "
            "not yet spooled are lost; starting another",
            process.pid,
            process.exitcode,
            len(self._open),
        )
        self._close_socket()
        if self._status is not None:
            self._status.close()
        self._process = self._status = None
        self._orphans |= self._open
        self._open = set()
        self._lost += (len(self._queue) + 1) // 2  # a header and its events a chunk
        self._queue.clear()
        self._queued = 0
        if self._behind:  # nothing is queued any more: no channel waits for it
            self._behind = False
            self._on_behind(False)
        self.restarts += 1
        self.on_lost("the gateway's recorder stopped unexpectedly")
        if not self._stopping:
            loop.create_task(self._restart())

    async def _restart(self) -> None:
        try:
            await self._until_ready(*self._launch())
        except SpoolError:
            log.exception("the recorder process cannot be started again")
            await asyncio.sleep(1.0)
            if not self._stopping:
                asyncio.get_running_loop().create_task(self._restart())

    # -- what the relay's process reads -----------------------------------------------

    @property
    def pending(self) -> int:
        if not self._started:  # unknown: weighed as beyond the reserve until it is known
            return UNKNOWN_PENDING
        return int(self._figures[FIGURES.index("pending")]) + self._queued

    @property
    def queued_bytes(self) -> int:
        return self._queued

    def figures(self) -> Figures:
        value = dict(zip(FIGURES, self._figures, strict=True))
        return Figures(
            int(value["chunks_spooled"]),
            int(value["bytes_spooled"]),
            int(value["chunks_published"]),
            int(value["publish_errors"]),
            int(value["producer_replacements"]),
            bool(value["kafka_reachable"]),
            int(value["pending"]),
            value["oldest_pending_s"],
            int(value["lost"]) + self._lost,
        )


def _first_word(status: Pipe, process: BaseProcess) -> tuple[Any, ...]:
    """What the recorder process says once started, or why it said nothing."""
    if not status.poll(START_TIMEOUT_S):
        process.kill()
        return ("error", f"nothing said within {START_TIMEOUT_S:.0f} s")
    try:
        word: tuple[Any, ...] = status.recv()
    except EOFError:
        process.join(5)
        return ("error", f"it ended at once (exit {process.exitcode}); see its log above")
    return word


def _last_word(status: Pipe, process: BaseProcess, timeout: float) -> tuple[Any, ...]:
    """What the recorder process says as it ends (``("stopped", delivered)``)."""
    try:
        if status.poll(timeout):
            word: tuple[Any, ...] = status.recv()
            return word
    except (EOFError, OSError):
        pass
    log.error("the recorder process did not end within %.0f s; killing it", timeout)
    process.kill()
    return ("killed",)
