"""The SSH gateway: authenticates operators, opens targets, records every channel.

:class:`Gateway` holds what all connections share (policy, keys, spool,
limits); asyncssh creates one :class:`Connection` per operator connection and
calls its methods during authentication and when channels are requested.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections import defaultdict, deque
from collections.abc import Awaitable, Callable
from typing import Any, NoReturn

import asyncssh
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from producer.forward import Forward, destination
from producer.policy import Login, Policy, Refused, Target
from producer.recorder import Recorder, call_later
from producer.relay import Held, OperatorChannel, describe_error
from producer.spool import Spool
from producer.targets import TargetConnector
from producer.writer import ChunkWriter
from sshtrail.events import Start
from sshtrail.ids import uuid7
from sshtrail.settings import Settings

log = logging.getLogger(__name__)


class Gateway:
    """State shared by every connection of one gateway process."""

    def __init__(
        self,
        settings: Settings,
        policy: Policy,
        signer: Ed25519PrivateKey,
        spool: Spool,
        connector: TargetConnector,
    ) -> None:
        self.settings = settings
        self.gw = settings.gateway
        self.policy = policy
        self.signer = signer
        self.spool = spool
        self.connector = connector
        #: Every open session channel and forwarded connection.
        self.channels: set[Held] = set()
        self.per_operator: dict[str, int] = defaultdict(int)
        self._failures: dict[str, deque[float]] = defaultdict(deque)
        #: Connections not logged in yet, per client address.
        self.pending: dict[str, int] = defaultdict(int)
        self._last_noted: dict[str, float] = {}
        self.accepting = True
        self.stalled = False
        #: Encodes and spools chunks on its own thread; started with :meth:`start`.
        self.writer = ChunkWriter(spool, self._from_writer, self._writer_behind)
        self.writer_behind = False
        self._loop: asyncio.AbstractEventLoop | None = None

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        """Start the chunk writer; its notices come back on ``loop``."""
        self._loop = loop
        self.writer.start()

    def stop(self) -> None:
        """Spool every chunk still queued (after the last session closed)."""
        self.writer.stop()

    # -- limits ------------------------------------------------------------------

    def auth_failed(self, address: str) -> None:
        self._failures[address].append(time.monotonic())

    def too_many_failures(self, address: str) -> bool:
        window = self._failures[address]
        cutoff = time.monotonic() - 60
        while window and window[0] < cutoff:
            window.popleft()
        if not window:
            self._failures.pop(address, None)
        return len(window) >= self.gw.auth_attempts_per_minute

    def admit(self, address: str) -> str | None:
        """Count a new connection as waiting to log in; or why it may not."""
        if self.too_many_failures(address):
            return "too many failed logins; try again later"
        if self.pending[address] >= self.gw.max_pending_logins_per_address:
            return "too many connections from your address waiting to log in"
        if sum(self.pending.values()) >= self.gw.max_pending_logins:
            return "too many connections waiting to log in; try again later"
        self.pending[address] += 1
        return None

    def logged_in_or_gone(self, address: str) -> None:
        """A connection :meth:`admit` counted no longer waits to log in."""
        self.pending[address] -= 1
        if self.pending[address] <= 0:
            del self.pending[address]

    def note(self, address: str, message: str) -> None:
        """Log a refusal of ``address``, at most every 10 s: a flood must not flood the log."""
        now = time.monotonic()
        if now - self._last_noted.get(address, -10.0) >= 10:
            self._last_noted[address] = now
            log.warning(
                "%s: %s (further refusals of this address for 10 s not logged)", address, message
            )
        if len(self._last_noted) > 10_000:  # forget addresses seen long ago
            self._last_noted = {a: t for a, t in self._last_noted.items() if now - t < 10}

    def spool_state(self) -> str:
        """``ok``, ``full`` (beyond max_bytes) or ``reserve`` (beyond the reserve too)."""
        pending = self.spool.pending
        if pending < self.gw.spool.max_bytes:
            return "ok"
        reserve = self.gw.spool.max_bytes + self.gw.spool.reserve_bytes
        return "full" if pending < reserve else "reserve"

    # -- the recording sink ------------------------------------------------------

    def submit(
        self, session_id: uuid.UUID, encode: Callable[[], bytes], final: bool, size: int
    ) -> None:
        """:class:`~producer.recorder.ChunkSink`: to the writer thread, then the spool."""
        self.writer.submit(session_id, encode, final, size)
        if not self.stalled and self.spool_state() == "reserve":
            self._stall(True)

    def _from_writer(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` on the event loop (called from the writer thread)."""
        if self._loop is not None:
            with contextlib.suppress(RuntimeError):  # the loop has closed: nobody to tell
                self._loop.call_soon_threadsafe(callback)

    def _writer_behind(self, behind: bool) -> None:
        """Pause (or resume) reading on every channel while the writer is far behind."""
        self.writer_behind = behind
        self._hold_all("recording", behind)
        if behind:
            log.warning(
                "the chunk writer is %d bytes behind (is the disk slow?): sessions "
                "paused until it catches up",
                self.writer.queued_bytes,
            )
        else:
            log.info("the chunk writer caught up; sessions resumed")

    def _hold_all(self, reason: str, hold: bool) -> None:
        for channel in self.channels:
            for side in ("operator", "target"):
                if hold:
                    channel.hold(side, reason)
                else:
                    channel.release(side, reason)

    def _stall(self, stalled: bool) -> None:
        """Pause (or resume) reading on every channel: the spool has no room left."""
        self.stalled = stalled
        self._hold_all("spool", stalled)
        if stalled:
            log.error(
                "spool beyond max_bytes + reserve_bytes (%d bytes undelivered): all "
                "sessions paused until Kafka takes them",
                self.spool.pending,
            )
        else:
            log.warning("spool below max_bytes again; sessions resumed")

    async def watch_spool(self) -> None:
        """Resume paused sessions once the spool has drained below ``max_bytes``."""
        while True:
            await asyncio.sleep(0.2)
            if self.stalled and self.spool_state() == "ok":
                self._stall(False)

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
        )

    # -- periodic work -------------------------------------------------------------

    async def watch_idle(self) -> None:
        """Close channels with no traffic for ``idle_timeout_s``."""
        timeout = self.gw.idle_timeout_s
        if not timeout:
            return
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(min(timeout / 4, 30))
            for channel in list(self.channels):
                if loop.time() - channel.last_activity > timeout:
                    channel.close(f"idle for more than {timeout} s")


class Connection(asyncssh.SSHServer):
    """One operator connection; asyncssh calls these during auth and channel opens."""

    def __init__(self, gateway: Gateway) -> None:
        self._gateway = gateway
        self._conn: asyncssh.SSHServerConnection | None = None
        self.client = "?"
        self._address = "?"
        self.login = Login("", None)
        self._authenticated = False
        self._upstream: asyncssh.SSHClientConnection | None = None
        self._upstream_lock = asyncio.Lock()
        self._channels: set[Held] = set()
        self._client_stalled = False
        self._pending = False  # counted among the connections waiting to log in
        self._refusal_recorded = False

    def describe(self) -> str:
        return f"{self.client} {self.login.operator or '?'}:{self.login.target or '-'}"

    # -- authentication ------------------------------------------------------------

    def connection_made(self, conn: asyncssh.SSHServerConnection) -> None:
        self._conn = conn
        peer = conn.get_extra_info("peername") or ("?", 0)
        self._address = str(peer[0])
        self.client = f"{peer[0]}:{peer[1]}"
        self._watch_transport(conn)
        refusal = self._gateway.admit(self._address)
        if refusal is None:
            self._pending = True
        else:
            self._gateway.note(self._address, refusal)
            conn.disconnect(asyncssh.DISC_TOO_MANY_CONNECTIONS, refusal)

    def _watch_transport(self, conn: asyncssh.SSHServerConnection) -> None:
        """Pause the targets while the operator's socket does not take what we send.

        SSH windows bound what a channel has in flight, but a client may grant
        a huge window and then stop reading: asyncssh would then queue without
        limit in the transport, whose full-buffer signals (asyncio's
        ``pause_writing``/``resume_writing`` on the protocol, the connection)
        asyncssh ignores. We take them and stop reading the targets instead.
        """
        pause, resume = conn.pause_writing, conn.resume_writing

        def transport_full() -> None:
            pause()
            self._client_stalled = True
            for channel in self._channels:
                channel.hold("target", "client socket")

        def transport_drained() -> None:
            resume()
            self._client_stalled = False
            for channel in self._channels:
                channel.release("target", "client socket")

        vars(conn).update(pause_writing=transport_full, resume_writing=transport_drained)

    def begin_auth(self, username: str) -> bool:
        self.login = Login.parse(username)
        keys = self._gateway.policy.authorized_keys(self.login.operator)
        assert self._conn is not None
        self._conn.set_authorized_keys(keys or asyncssh.import_authorized_keys(""))
        return True

    def public_key_auth_supported(self) -> bool:
        return True

    def validate_public_key(self, username: str, key: asyncssh.SSHKey) -> bool:
        # Only reached when the key is not among the operator's authorized keys.
        return False

    def password_auth_supported(self) -> bool:
        operator = self._gateway.policy.operator(self.login.operator)
        return bool(operator and operator.password_hash)

    def validate_password(self, username: str, password: str) -> bool:
        ok = self._gateway.policy.check_password(self.login.operator, password)
        if not ok:
            self._gateway.auth_failed(self._address)
        return ok

    def auth_completed(self) -> None:
        self._authenticated = True
        self._no_longer_pending()
        log.info("%s: authenticated", self.describe())

    # -- channels ----------------------------------------------------------------------

    def session_requested(self) -> OperatorChannel | bool:
        self._check_limits()
        channel = OperatorChannel(self)
        self._admit(channel)
        return channel

    def _check_limits(self) -> None:
        """Refuse a new channel here, before it exists, so that channels opened and
        never used cannot pile up: each is refused at once with the reason."""
        gateway, gw = self._gateway, self._gateway.gw
        if not gateway.accepting:
            raise asyncssh.ChannelOpenError(
                asyncssh.OPEN_ADMINISTRATIVELY_PROHIBITED, "the gateway is shutting down"
            )
        if len(gateway.channels) >= gw.max_sessions:
            self._refuse_channel(
                f"the gateway is at its limit of {gw.max_sessions} sessions",
                "refused: max_sessions",
            )
        if gateway.per_operator[self.login.operator] >= gw.max_sessions_per_operator:
            self._refuse_channel(
                f"you have {gw.max_sessions_per_operator} sessions open already",
                "refused: max_sessions_per_operator",
            )

    def _admit(self, channel: Held) -> None:
        if self._client_stalled:
            channel.hold("target", "client socket")
        if self._gateway.writer_behind:
            channel.hold("operator", "recording")
            channel.hold("target", "recording")
        self._channels.add(channel)
        self._gateway.channels.add(channel)
        self._gateway.per_operator[self.login.operator] += 1

    def connection_requested(
        self, dest_host: str, dest_port: int, orig_host: str, orig_port: int
    ) -> Awaitable[Forward]:
        """``ssh -L``: only to a target that allows it, opened from the target's side."""
        self._check_limits()
        try:
            target = self.resolve_target(self.spool_state())
        except Refused as refused:
            raise asyncssh.ChannelOpenError(
                asyncssh.OPEN_ADMINISTRATIVELY_PROHIBITED, refused.message
            ) from None
        if not target.settings.allow_forwarding:
            self._refuse_channel(
                f"port forwarding is not allowed to target {target.name!r}",
                "refused: port forwarding not allowed",
            )
        return self._open_forward(target, dest_host, dest_port, orig_host, orig_port)

    async def _open_forward(
        self, target: Target, dest_host: str, dest_port: int, orig_host: str, orig_port: int
    ) -> Forward:
        where = destination(dest_host, dest_port)
        recorder = self.new_recorder("", (0, 0, 0, 0))
        if recorder is not None:
            recorder.request("direct-tcpip", where.encode())
        forward = Forward(self, recorder, where)
        try:
            upstream = await self.target_connection(target)
            chan, _ = await upstream.create_connection(
                lambda: forward.target_end, dest_host, dest_port, orig_host, orig_port
            )
        except (OSError, asyncssh.Error) as exc:
            reason = describe_error(exc)
            if recorder is not None:
                recorder.close(f"forwarding to {where} failed: {reason}")
            log.info("%s: forwarding to %s failed: %s", self.describe(), where, reason)
            message = f"sshtrail: cannot reach {where}: {reason}"
            raise asyncssh.ChannelOpenError(asyncssh.OPEN_CONNECT_FAILED, message) from None
        forward.opened(chan)
        self._admit(forward)
        return forward

    def _refuse_channel(self, message: str, reason: str) -> NoReturn:
        """Refuse a channel open; the first refusal of a connection is recorded."""
        self._gateway.note(self._address, f"{self.describe()}: {reason}")
        if not self._refusal_recorded:  # once: a flood of opens is not a flood of records
            self._refusal_recorded = True
            self._gateway.recorder(self._refused_start()).close(reason)
        raise asyncssh.ChannelOpenError(asyncssh.OPEN_ADMINISTRATIVELY_PROHIBITED, message)

    def new_recorder(self, term: str, size: tuple[int, int, int, int]) -> Recorder | None:
        """The recording of a new channel, before its target is known to be allowed."""
        gateway = self._gateway
        if not gateway.gw.record:
            return None
        target = gateway.connector.describe(self.login.target)
        start = Start(
            t=0,
            operator=self.login.operator,
            client=self.client,
            target=self.login.target or "",
            host=target[0],
            port=target[1],
            user=target[2],
            gateway=gateway.settings.instance,
            term=term,
            cols=size[0],
            rows=size[1],
            started_at=time.time_ns(),
        )
        if gateway.spool_state() == "full" and gateway.gw.spool.policy == "fail-open":
            log.error(
                "%s: spool full and spool.policy is fail-open: this session is NOT recorded",
                self.describe(),
            )
            gateway.recorder(start).close("unrecorded: spool full (fail-open)")
            return None
        return gateway.recorder(start)

    def spool_state(self) -> str:
        return self._gateway.spool_state()

    def resolve_target(self, state: str) -> Target:
        """Check the spool and the policy for a new channel; :class:`Refused` says why not.

        ``state`` is the spool's state when the channel's request arrived. (The
        session limits are checked when the channel opens: ``session_requested``.)
        """
        gateway, gw = self._gateway, self._gateway.gw
        if state != "ok" and (gw.spool.policy == "fail-closed" or state == "reserve"):
            raise Refused(
                "the recording spool is full (is Kafka down?); new sessions are "
                "refused until it drains",
                "refused: spool full",
            )
        return gateway.policy.resolve(self.login)

    async def target_connection(self, target: Target) -> asyncssh.SSHClientConnection:
        """This connection's SSH connection to its target, opened on first use."""
        async with self._upstream_lock:
            if self._upstream is None:
                self._upstream = await self._gateway.connector.connect(target)
            return self._upstream

    def channel_closed(self, channel: Held) -> None:
        self._channels.discard(channel)
        gateway = self._gateway
        if channel in gateway.channels:
            gateway.channels.discard(channel)
            gateway.per_operator[self.login.operator] -= 1
            if gateway.per_operator[self.login.operator] <= 0:
                gateway.per_operator.pop(self.login.operator, None)

    def _no_longer_pending(self) -> None:
        if self._pending:
            self._pending = False
            self._gateway.logged_in_or_gone(self._address)

    def connection_lost(self, exc: Exception | None) -> None:
        self._no_longer_pending()
        if self._upstream is not None:
            self._upstream.close()
        if self._authenticated or not self.login.operator:
            return
        # A login that never succeeded is audit data too: record it as a session
        # that was refused, with the reason.
        self._gateway.auth_failed(self._address)
        known = self._gateway.policy.operator(self.login.operator) is not None
        reason = "refused: authentication failed" if known else "refused: unknown operator"
        log.info("%s: %s", self.describe(), reason)
        with contextlib.suppress(RuntimeError):  # the loop is already shutting down
            self._gateway.recorder(self._refused_start()).close(reason)

    def _refused_start(self) -> Start:
        return Start(
            0,
            self.login.operator[:4096],
            self.client,
            self.login.target or "",
            "",
            0,
            "",
            self._gateway.settings.instance,
            "",
            0,
            0,
            time.time_ns(),
        )


def server_options(host_key: asyncssh.SSHKey, ciphers: list[str]) -> dict[str, Any]:
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
