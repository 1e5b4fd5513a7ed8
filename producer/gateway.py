"""The gateway's shared state: what every operator connection of one process uses.

:class:`Gateway` holds the policy, keys, admission limits, the live sessions
and the recording; each operator connection (``producer/connection.py``) is
given it. Recording goes from the connections' recorders through
:meth:`Gateway.submit` to the recording (``producer/recording.py``: a recorder
process, or a writer thread) and its spool; when the spool or the recording
cannot keep up, every session is held until they do.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from producer.admission import Admission, Refuse, SpoolState
from producer.commandcheck import CommandCheck
from producer.controllistener import ControlListener
from producer.policy import Policy
from producer.recorder import Recorder, call_later
from producer.recording import Recording
from producer.sessions import LiveSessions
from producer.sharedfailures import SharedFailures
from producer.sharedpending import SharedPending
from producer.upstream import TargetConnector
from sshtrail.escrow import Sealer
from sshtrail.events import Event, Start
from sshtrail.ids import uuid7
from sshtrail.settings import Settings

log = logging.getLogger(__name__)

#: Threads checking passwords (scrypt); a login waits for one instead of the event loop.
PASSWORD_THREADS = 2
#: How long a login waits for the operator locks to be read before it goes on (and its
#: sessions are refused): well within asyncssh's 60 s login timeout.
LOCKS_WAIT_S = 15.0


class Gateway:
    """State shared by every connection of one gateway process."""

    def __init__(
        self,
        settings: Settings,
        *,
        policy: Policy,
        signer: Ed25519PrivateKey,
        recording: Recording,
        connector: TargetConnector,
        sealer: Sealer | None = None,
        sessions: LiveSessions | None = None,
        failures: SharedFailures | None = None,
        pending: SharedPending | None = None,
    ) -> None:
        self.settings = settings
        self.gw = settings.gateway
        self.policy = policy
        self.signer = signer
        self.recording = recording
        self.connector = connector
        self.sealer = sealer
        self.admission = Admission(self.gw, failures=failures, pending=pending)
        #: The command policy (``policy.file``), kept current.
        self.commands = CommandCheck(
            Path(settings.policy.file).expanduser() if settings.policy.file else None
        )
        self.sessions = sessions if sessions is not None else LiveSessions()
        self.hasher = ThreadPoolExecutor(PASSWORD_THREADS, thread_name_prefix="password")
        #: Requests from the control topic and the operators locked (set by the service).
        self.control: ControlListener | None = None
        #: Set by the service once the recording has started (its spool's state known).
        self.recording_started = asyncio.Event()

    def stop(self) -> None:
        """Stop checking passwords (after the last session closed)."""
        self.hasher.shutdown(wait=False, cancel_futures=True)

    def spool_state(self) -> SpoolState:
        return self.admission.spool_state(self.recording.pending)

    # -- operator locks ------------------------------------------------------------

    async def locks_known(self, who: str) -> None:
        """Hold a login (``who``) until the recording has started and the operator locks
        are read, at most :data:`LOCKS_WAIT_S`; its sessions are refused if the locks
        still are not (and weighed against a full spool if the recording has not
        started: a recorder process still waiting for the spool)."""
        if not self.recording_started.is_set():
            log.info("%s: login waits for the recording to start", who)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.recording_started.wait(), LOCKS_WAIT_S)
        control = self.control
        if control is not None and control.unread() is None:
            return
        log.info(
            "%s: login waits for the operator locks (%s)",
            who,
            control.unread() if control is not None else "control listener not started",
        )
        deadline = asyncio.get_running_loop().time() + LOCKS_WAIT_S
        while self.control is None:  # set by the service just after it listens
            if asyncio.get_running_loop().time() >= deadline:
                return
            await asyncio.sleep(0.05)
        await self.control.read(max(deadline - asyncio.get_running_loop().time(), 0.0))

    def operator_refusal(self, operator: str) -> Refuse | None:
        """Why ``operator`` may not open a session now (locked, locks unknown, or no
        command policy readable), if so."""
        unread = self.commands.refusal()
        if unread is not None:
            log.warning("refusing %s: %s", operator, unread)
            return Refuse(
                "the gateway's command policy cannot be read; sessions are refused until "
                "an administrator mends it",
                "policy unreadable",
            )
        return self.admission.operator(operator, self.control)

    # -- the recording sink ------------------------------------------------------

    def recorder(self, start: Start) -> Recorder:
        gw = self.gw
        return Recorder(
            start,
            self.signer,
            self,
            call_later(asyncio.get_running_loop()),
            session_id=uuid7(),
            max_bytes=gw.chunk_max_bytes,
            max_delay_s=gw.chunk_max_delay_ms / 1000,
            echo_window_s=gw.echo_window_ms / 1000 if start.term else None,
            sealer=self.sealer,
        )

    def submit(
        self, session_id: uuid.UUID, seq: int, events: list[Event], final: bool, size: int
    ) -> None:
        """:class:`~producer.recorder.ChunkSink`: to the recording, then the spool."""
        self.recording.submit(session_id, seq, events, final, size)
        if not self.sessions.held("spool") and self.spool_state() is SpoolState.RESERVE:
            self._stall(True)

    def recording_behind(self, behind: bool) -> None:
        """Pause (or resume) reading on every channel while the recording is far behind."""
        self.sessions.hold_all("recording", behind)
        if behind:
            log.warning(
                "the recording is %d bytes behind (is the disk slow?): sessions "
                "paused until it catches up",
                self.recording.queued_bytes,
            )
        else:
            log.info("the recording caught up; sessions resumed")

    def recording_lost(self, reason: str) -> None:
        """The recorder process died: its sessions' chains cannot go on; end them."""
        self.sessions.close_all(reason)

    def _stall(self, stalled: bool) -> None:
        """Pause (or resume) reading on every channel: the spool has no room left."""
        self.sessions.hold_all("spool", stalled)
        if stalled:
            log.error(
                "spool beyond max_bytes + reserve_bytes (%d bytes undelivered): all "
                "sessions paused until Kafka takes them",
                self.recording.pending,
            )
        else:
            log.warning("spool below max_bytes again; sessions resumed")

    async def watch_spool(self) -> None:
        """Resume paused sessions once the spool has drained below ``max_bytes``."""
        while True:
            await asyncio.sleep(0.2)
            if self.sessions.held("spool") and self.spool_state() is SpoolState.OK:
                self._stall(False)


def server_options(host_key: Any, ciphers: list[str]) -> dict[str, Any]:
    """asyncssh server options: our host key, nothing that escapes the recording."""
    options = {"encryption_algs": ciphers} if ciphers else {}
    return options | {
        "server_host_keys": [host_key],
        "encoding": None,
        "line_editor": False,
        "agent_forwarding": False,
        "x11_forwarding": False,
        "allow_scp": False,
        "sftp_factory": None,
        "login_timeout": 60,
        "keepalive_interval": 30,
        "server_version": "sshtrail",
    }
