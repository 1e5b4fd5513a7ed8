"""The recorder process: a gateway process's chains, spool and Kafka producer.

Started by the relay's process (``producer/recordlink.py``), which hands it
every chunk its recorders finish as a frame on a local stream socket::

    session id (16) | seq u64 | flags u8 | length u32 | events (MessagePack)

The events arrive encoded (``wire.encode_events``) and checked against the
wire format's rules (``wire.shape_problem``); here each session's chain
numbers, links and signs them (``ChainWriter.encode_encoded``: the chunk's
body takes the events' bytes as they are), the spool appends the chunk (and
fsyncs at once after a session's last), and the publisher sends the spool to
Kafka in order -- exactly what the writer and publisher threads do in the
relay's process with ``gateway.recorder = "thread"``.

Its life follows the socket: it takes frames until the relay's side is closed
-- a graceful stop, whose last frame (:data:`STOP`) says how long to publish,
or the relay's process killed, even with ``-9`` (then :data:`ORPHAN_PUBLISH_S`)
-- and then spools every frame it was sent, publishes for that long, closes the
spool and exits. So a relay killed mid-session loses nothing it had handed
over, and its successor (a replaced worker, a restarted gateway) opens the spool once
this process has let it go (``Spool.open`` waits for its lock), publishes the
rest, and signs the end of each session left open (``producer/tails.py``).
SIGINT and SIGTERM are ignored: a Ctrl-C in a terminal reaches the whole
process group, and the relay's process decides when recording stops.

What ``/metrics`` shows of it is written every :data:`FIGURES_EVERY_S` into
shared memory the relay's process reads (:data:`FIGURES`).
"""

from __future__ import annotations

import contextlib
import logging
import signal
import socket
import struct
import threading
import uuid
from dataclasses import dataclass
from multiprocessing.connection import Connection as Pipe
from pathlib import Path
from typing import Any, Final

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from producer import keys
from producer.publisher import Publisher
from producer.recording import open_spool, spool_parts
from producer.spool import Spool, SpoolError
from sshtrail.chain import ChainWriter
from sshtrail.settings import Settings

log = logging.getLogger(__name__)

#: A frame's header (see the module's text).
FRAME: Final = struct.Struct(">16sQBI")
FINAL: Final = 0x01
#: The relay's last frame at a graceful stop: no session's, its body how long to
#: publish (``STOP_BODY``). The socket's end without it: the relay died.
STOP: Final = 0x02
STOP_BODY: Final = struct.Struct(">d")
#: The figures, in this order, in the shared array of doubles.
FIGURES: Final = (
    "chunks_spooled",
    "bytes_spooled",
    "chunks_published",
    "publish_errors",
    "producer_replacements",
    "kafka_reachable",
    "pending",
    "oldest_pending_s",
    "lost",
)
FIGURES_EVERY_S: Final = 0.05
#: How long it publishes after its relay died (its successor publishes the rest).
ORPHAN_PUBLISH_S: Final = 2.0
_READ_BUFFER: Final = 1 << 20


@dataclass(frozen=True, slots=True)
class Plan:
    """What a recorder process is started with (pickled to it)."""

    settings: Settings
    spool_dir: Path
    signing_key_path: Path
    #: The relay's recording key: the end events it makes name it.
    public_key: bytes
    log_level: int


def run_recorder(
    plan: Plan,
    frames: socket.socket,
    status: Pipe,
    figures: Any,
    relays_end: socket.socket | None = None,
) -> None:
    """The process's life (see the module's text). Says ``("ready",)`` or ``("error",
    text)`` on ``status`` once started, and ``("stopped", delivered)`` at its end.
    ``relays_end``: the relay's side of the socket, inherited by a fork: closed here
    at once, or the relay's death would never read as the socket's end."""
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, signal.SIG_IGN)
    logging.basicConfig(
        level=plan.log_level,
        format="%(asctime)s %(levelname)-7s recorder %(name)s: %(message)s",
        force=True,
    )
    if relays_end is not None:  # forked
        relays_end.close()
        signal.set_wakeup_fd(-1)  # the relay's event loop's
    signer = keys.signing_key(plan.signing_key_path)
    if signer.public_key().public_bytes_raw() != plan.public_key:
        status.send(("error", f"the recording key {plan.signing_key_path} changed while starting"))
        return
    spool, tails, publisher = spool_parts(plan.settings, plan.spool_dir, signer)
    try:
        open_spool(spool, tails, publisher, signer)
    except (SpoolError, OSError) as exc:
        status.send(("error", str(exc)))
        return
    status.send(("ready",))
    shown = _Figures(figures, spool, publisher)
    shown.start()
    publish_s = _take_frames(frames, spool, signer, shown)
    orphaned = publish_s is None
    if shown.lost:
        log.error("%d chunks could not be recorded (each logged above)", shown.lost)
    delivered = publisher.stop(ORPHAN_PUBLISH_S if publish_s is None else publish_s)
    spool.close()
    shown.stop()
    if orphaned:
        log.warning(
            "the gateway process ended without stopping its recorder: everything it had "
            "handed over is spooled%s",
            "" if delivered else "; the rest is published by its successor",
        )
    with contextlib.suppress(OSError):  # nobody may be listening any more
        status.send(("stopped", delivered))


def _take_frames(
    frames: socket.socket, spool: Spool, signer: Ed25519PrivateKey, shown: _Figures
) -> float | None:
    """Chain, sign and spool every frame until the socket's end: how long to publish
    if the relay said it is stopping, None if it ended without saying so (killed)."""
    chains: dict[uuid.UUID, ChainWriter] = {}
    publish_s: float | None = None
    with frames, frames.makefile("rb", buffering=_READ_BUFFER) as stream:
        while True:
            header = stream.read(FRAME.size)
            if len(header) < FRAME.size:
                return publish_s  # the relay's side closed (a torn frame: it was killed)
            sid, seq, flags, length = FRAME.unpack(header)
            events = stream.read(length)
            if len(events) < length:
                return publish_s
            if flags & STOP:
                (publish_s,) = STOP_BODY.unpack(events)
                continue
            session_id = uuid.UUID(bytes=sid)
            final = bool(flags & FINAL)
            chain = chains.get(session_id)
            if chain is None:
                chain = chains[session_id] = ChainWriter(session_id, signer)
            if final:
                del chains[session_id]
            try:
                chunk = chain.encode_encoded(seq, events, end=final)
                spool.append(str(session_id).encode(), chunk)
            except SpoolError:
                shown.lost += 1
                log.exception("session %s: chunk lost, the spool cannot be written", session_id)
                continue
            except Exception:  # a bug in one session must not stop every other's recording
                shown.lost += 1
                log.exception("session %s: chunk %d lost, it could not be encoded", session_id, seq)
                continue
            if final:
                spool.sync_soon()


class _Figures:
    """Writes the recording's figures into the shared array now and then."""

    def __init__(self, array: Any, spool: Spool, publisher: Publisher) -> None:
        self._array = array
        self._spool = spool
        self._publisher = publisher
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="figures", daemon=True)
        self.lost = 0

    def start(self) -> None:
        self._write()
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        self._thread.join()
        self._write()

    def _run(self) -> None:
        while not self._stopping.wait(FIGURES_EVERY_S):
            self._write()

    def _write(self) -> None:
        spool, publisher = self._spool, self._publisher
        values = (
            spool.appended_records,
            spool.appended_bytes,
            publisher.delivered,
            publisher.errors,
            publisher.renewals,
            1.0 if publisher.broker_reachable else 0.0,
            spool.pending,
            spool.oldest_pending_age(),
            self.lost,
        )
        for index, value in enumerate(values):
            self._array[index] = float(value)
