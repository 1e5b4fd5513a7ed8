"""Encoding, hashing and spooling chunks on a thread of the relay's process
(``gateway.recorder = "thread"``; the default is a process of its own,
``producer/recordlink.py``).

A recorder decides *what* goes into a chunk on the event loop; turning it
into bytes (MessagePack, the SHA-256 chain, the signature) and appending
it to the spool (CRC, ``write``) is the bulk of the recording's CPU time, and
much of it runs in C without the interpreter lock. :class:`ChunkWriter` does
that work on one thread, in the order the chunks were handed over -- which
keeps each session's chain in order, since one session's chunks are handed
over in order. The event loop only queues a job and returns, so a bulk
transfer's recording runs beside the relay instead of inside it.

What is queued is bounded: beyond ``max_bytes`` the gateway pauses reading
from operators and targets until the writer has caught up (``on_full`` /
``on_drained``, called on the event loop).
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from producer.spool import Spool, SpoolError
from sshtrail.chain import ChainWriter
from sshtrail.events import Event

log = logging.getLogger(__name__)

#: Queued chunk bytes beyond which the gateway stops reading (see the module's text).
MAX_QUEUED = 16 << 20


@dataclass(frozen=True, slots=True)
class _Job:
    session_id: uuid.UUID
    seq: int
    events: list[Event]
    final: bool
    size: int


class ChunkWriter:
    """Runs chunk jobs on a thread, in order, into the spool."""

    def __init__(
        self,
        spool: Spool,
        signer: Ed25519PrivateKey,
        call_soon: Callable[[Callable[[], None]], object],
        on_full: Callable[[bool], None],
        max_bytes: int = MAX_QUEUED,
    ) -> None:
        self._spool = spool
        self._signer = signer
        #: The chain of each session with chunks to come (the writer thread's own).
        self._chains: dict[uuid.UUID, ChainWriter] = {}
        self._call_soon = call_soon  # loop.call_soon_threadsafe
        self._on_full = on_full
        self._max_bytes = max_bytes
        self._jobs: deque[_Job] = deque()
        self._queued = 0
        self._full = False
        self._lock = threading.Condition()
        self._stopping = False
        self._done = True  # no thread to take jobs (not started, or ended)
        self._thread = threading.Thread(target=self._run, name="chunk-writer", daemon=True)
        self.lost = 0

    @property
    def queued_bytes(self) -> int:
        """Chunk bytes handed over but not yet in the spool (an estimate)."""
        return self._queued

    def start(self) -> None:
        self._done = False
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Write everything queued, then end the thread. Chunks submitted while it
        drains are drained too; after that they are written at once, on the
        caller's thread (refusals recorded late in a shutdown)."""
        with self._lock:
            self._stopping = True
            self._lock.notify()
        if not self._thread.is_alive():
            return
        self._thread.join(timeout)
        if self._thread.is_alive():
            log.error(
                "the chunk writer did not finish within %.0f s; %d chunk bytes not spooled",
                timeout,
                self._queued,
            )

    def submit(
        self, session_id: uuid.UUID, seq: int, events: list[Event], final: bool, size: int
    ) -> None:
        """Queue one chunk (event loop); ``size`` estimates its bytes for the bound."""
        job = _Job(session_id, seq, events, final, size)
        with self._lock:
            late = self._done  # after the thread's end (or before its start): write here
            if not late:
                self._jobs.append(job)
                self._queued += size
                full = not self._full and self._queued > self._max_bytes
                if full:
                    self._full = True
                self._lock.notify()
        if late:
            self._write(job)
        elif full:
            self._on_full(True)

    def _run(self) -> None:
        while True:
            with self._lock:
                while not self._jobs and not self._stopping:
                    self._lock.wait()
                if not self._jobs:
                    self._done = True  # under the lock: a later submit writes itself
                    return
                job = self._jobs.popleft()
            self._write(job)
            with self._lock:
                self._queued -= job.size
                drained = self._full and self._queued <= self._max_bytes // 2
                if drained:
                    self._full = False
            if drained:
                self._call_soon(lambda: self._on_full(False))

    def _write(self, job: _Job) -> None:
        try:
            chain = self._chains.get(job.session_id)
            if chain is None:
                chain = self._chains[job.session_id] = ChainWriter(job.session_id, self._signer)
            if job.final:
                del self._chains[job.session_id]
            chunk = chain.encode(job.events)
            self._spool.append(str(job.session_id).encode(), chunk)
        except SpoolError:
            self.lost += 1
            log.exception("session %s: chunk lost, the spool cannot be written", job.session_id)
            return
        except Exception:  # a bug in encoding must not stop every other session's recording
            self.lost += 1
            log.exception("session %s: chunk lost, it could not be encoded", job.session_id)
            return
        if job.final:
            self._spool.sync_soon()
