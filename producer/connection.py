"""One operator's SSH connection to the gateway: authentication, then channels.

asyncssh creates one :class:`Connection` per client and calls it while the
client authenticates and when it opens channels. Authentication is bounded
per attempt (``producer/admission.py``): at most ``gateway.max_auth_tries``
failures on a connection, and failures counted against the client's address
and the operator name across connections. Every name is offered the same
methods and a wrong password costs the same as an unknown name (a dummy
hash), so names cannot be told apart from outside. Password hashing runs on
a small thread pool, never on the event loop.

Every failed attempt is part of the audit record: a login that never
succeeds is recorded as a refused session naming how many attempts of which
methods failed, and a login that succeeds after failures says so in each of
its sessions (or on its own, if it opens none).

Why one module of a little more than 400 lines: asyncssh calls one object for a
connection's whole life -- authentication, each channel's open (sessions and
forwards), the transport's back-pressure, the end -- in an order only it knows; the
rules it applies live elsewhere (admission, policy, moderation, relays), this holds
where asyncssh's callbacks reach them.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence

import asyncssh

from producer.admission import Record, Refuse, Unrecorded, Verdict
from producer.channel import Relay
from producer.forward import Forward, destination
from producer.gateway import Gateway
from producer.moderation import Hooks, Moderated
from producer.policy import Login, Refused, Target
from producer.recorder import Recorder
from producer.relay import OperatorChannel
from producer.reviews import Held, Review
from producer.reviews import Verdict as ReviewVerdict
from producer.upstream import Upstream
from sshtrail.commandpolicy import Decision
from sshtrail.events import Start

log = logging.getLogger(__name__)

_PASSWORD_PROMPT = (("Password: ", False),)


class Connection(asyncssh.SSHServer):
    """One operator connection; asyncssh calls these during auth and channel opens."""

    def __init__(self, gateway: Gateway) -> None:
        self._gateway = gateway
        self._conn: asyncssh.SSHServerConnection | None = None
        self.client = "?"
        self._address = "?"
        self.login = Login("", None)
        self._authenticated = False
        self._upstream = Upstream(gateway.connector)
        self._relays: set[Relay] = set()
        self._client_stalled = False
        self._pending = False  # counted among the connections waiting to log in
        self._refusal_recorded = False
        #: Failed authentication attempts on this connection, per method.
        self._failures: Counter[str] = Counter()
        self._refused_attempt: Refuse | None = None
        #: Set on a login that succeeded after failures, until a session records it.
        self._auth_notice: str | None = None

    # -- ChannelHost ---------------------------------------------------------------

    @property
    def upstream(self) -> Upstream:
        return self._upstream

    def describe(self) -> str:
        return f"{self.client} {self.login.operator or '?'}:{self.login.target or '-'}"

    def refused(self, kind: str) -> None:
        self._gateway.admission.counted(kind)

    def checks_commands(self, target: Target) -> bool:
        policy = self._gateway.commands.policy
        return policy is None or policy.covers(target.name)

    def decide_command(self, target: Target, line: str) -> Decision | None:
        return self._gateway.commands.decide(self.login.operator, target.name, line)

    def moderate(self, target: Target, session: str, hooks: Hooks) -> Moderated | None:
        policy = self._gateway.commands.policy
        rule = None if policy is None else policy.moderation(self.login.operator, target.name)
        if rule is None:
            return None
        control = self._gateway.control
        if control is None:
            raise Refused(
                "this target is moderated, and the gateway does not read the control topic",
                "moderation unavailable",
            )
        return control.moderation.open(rule, session, self.login.operator, target.name, hooks)

    async def moderated(self, moderated: Moderated) -> str | None:
        assert self._gateway.control is not None  # moderate() gave it
        return await self._gateway.control.moderation.wait(moderated)

    def moderation_ended(self, moderated: Moderated, reason: str) -> None:
        if self._gateway.control is not None:
            self._gateway.control.moderation.ended(moderated, reason)

    def ask_review(self, held: Held, done: Callable[[ReviewVerdict], None]) -> Review | None:
        control = self._gateway.control
        if control is None:
            done(ReviewVerdict("unavailable", None, "the control topic is not read yet", 0.0))
            return None
        return control.reviews.ask(dataclasses.replace(held, operator=self.login.operator), done)

    def target(self) -> Target:
        """The target this login may use; :class:`Refused` when it may not, or when its
        operator is locked (the session is refused with the lock's reason, recorded)."""
        refusal = self._gateway.operator_refusal(self.login.operator)
        if refusal is not None:
            raise Refused(refusal.message, refusal.kind, refusal.detail)
        return self._gateway.policy.resolve(self.login)

    def start_recording(self, term: str, size: tuple[int, int]) -> tuple[Verdict, Recorder | None]:
        gateway = self._gateway
        if not gateway.gw.record:
            return Record(), None
        verdict = gateway.admission.recording(gateway.spool_state())
        recorder = gateway.recorder(self._start(term, size))
        if isinstance(verdict, Unrecorded):
            log.error(
                "%s: spool full and spool.policy is fail-open: this session is NOT recorded",
                self.describe(),
            )
            recorder.close(verdict.reason)
            return verdict, None
        if self._auth_notice is not None:
            recorder.notice("auth", self._auth_notice)
            self._auth_notice = None
        return verdict, recorder

    def channel_closed(self, relay: Relay) -> None:
        self._relays.discard(relay)
        self._gateway.sessions.remove(relay)

    # -- the connection --------------------------------------------------------------

    def connection_made(self, conn: asyncssh.SSHServerConnection) -> None:
        self._conn = conn
        peer = conn.get_extra_info("peername") or ("?", 0)
        self._address = str(peer[0])
        self.client = f"{peer[0]}:{peer[1]}"
        self._watch_transport(conn)
        refusal = self._gateway.admission.connection(self._address)
        if refusal is None:
            self._pending = True
        else:
            self._gateway.admission.note(self._address, refusal.message, refusal.kind)
            conn.disconnect(asyncssh.DISC_TOO_MANY_CONNECTIONS, refusal.message)

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
            for relay in self._relays:
                relay.hold("target", "client socket")

        def transport_drained() -> None:
            resume()
            self._client_stalled = False
            for relay in self._relays:
                relay.release("target", "client socket")

        vars(conn).update(pause_writing=transport_full, resume_writing=transport_drained)

    # -- authentication ------------------------------------------------------------

    async def begin_auth(self, username: str) -> bool:
        try:
            self.login = Login.parse(username)
        except Refused as refusal:
            # Said before authentication (a banner is all SSH has then): no operator
            # could log in with this name, so it says nothing about who exists. The
            # login stays nameless, so its failures count against the address only.
            self.login = Login("", None)
            self.refused(refusal.kind)
            assert self._conn is not None
            self._conn.send_auth_banner(refusal.message + "\r\n")
            log.info("%s: %s", self.describe(), refusal.message)
        await self._gateway.locks_known(self.describe())
        keys = self._gateway.policy.authorized_keys(self.login.operator)
        assert self._conn is not None
        self._conn.set_authorized_keys(keys or asyncssh.import_authorized_keys(""))
        return True

    def public_key_auth_supported(self) -> bool:
        return True

    def validate_public_key(self, username: str, key: asyncssh.SSHKey) -> bool:
        # Only reached when the key is not among the operator's authorized keys.
        if self._may_attempt():
            self._failed("publickey")
        return False

    # The same methods for every name: what is offered says nothing about who exists.
    def password_auth_supported(self) -> bool:
        return self._gateway.policy.passwords_in_use

    def kbdint_auth_supported(self) -> bool:
        return self._gateway.policy.passwords_in_use

    async def validate_password(self, username: str, password: str) -> bool:
        return await self._check_password(password, "password")

    def get_kbdint_challenge(
        self, username: str, lang: str, submethods: str
    ) -> tuple[str, str, str, tuple[tuple[str, bool], ...]]:
        return "", "", "", _PASSWORD_PROMPT

    async def validate_kbdint_response(self, username: str, responses: Sequence[str]) -> bool:
        if len(responses) != 1:
            return False
        return await self._check_password(responses[0], "keyboard-interactive")

    async def _check_password(self, password: str, method: str) -> bool:
        if not self._may_attempt():
            return False
        gateway = self._gateway
        loop = asyncio.get_running_loop()
        ok = await loop.run_in_executor(
            gateway.hasher, gateway.policy.check_password, self.login.operator, password
        )
        if not ok:
            self._failed(method)
        return ok

    def _may_attempt(self) -> bool:
        """Whether an attempt may be evaluated; if not, the connection is closed."""
        refusal = self._gateway.admission.attempt(
            self._address, self.login.operator, sum(self._failures.values())
        )
        if refusal is None:
            return True
        self._refused_attempt = refusal
        self._gateway.admission.note(
            self._address, f"{self.describe()}: {refusal.reason}", refusal.kind
        )
        if self._conn is not None:
            self._conn.disconnect(asyncssh.DISC_NO_MORE_AUTH_METHODS_AVAILABLE, refusal.message)
        return False

    def _failed(self, method: str) -> None:
        self._failures[method] += 1
        self._gateway.admission.failed(self._address, self.login.operator)
        if sum(self._failures.values()) >= self._gateway.gw.max_auth_tries:
            self._may_attempt()  # the limit is reached: close now, not at the next try

    def auth_completed(self) -> None:
        self._authenticated = True
        self._no_longer_pending()
        if self._failures:
            self._auth_notice = f"logged in after {_attempts(self._failures)}"
            log.warning("%s: authenticated %s", self.describe(), self._auth_notice)
        else:
            log.info("%s: authenticated", self.describe())

    # -- channels ------------------------------------------------------------------

    def session_requested(self) -> OperatorChannel:
        self._check_limits()
        channel = OperatorChannel(self, self._gateway.gw)
        self._admit(channel)
        return channel

    def _check_limits(self) -> None:
        """Refuse a new channel here, before it exists, so that channels opened and
        never used cannot pile up: each is refused at once with the reason."""
        sessions = self._gateway.sessions
        refusal = self._gateway.admission.channel(
            self.login.operator, sessions.gateway_total(), sessions.count_of(self.login.operator)
        )

        if refusal is not None:
            if refusal.kind == "shutting down":
                raise asyncssh.ChannelOpenError(
                    asyncssh.OPEN_ADMINISTRATIVELY_PROHIBITED, refusal.message
                )
            self._refuse_channel(refusal)

    def _admit(self, relay: Relay) -> None:
        if self._client_stalled:
            relay.hold("target", "client socket")
        self._relays.add(relay)
        self._gateway.sessions.add(relay, self.login.operator)

    def connection_requested(
        self, dest_host: str, dest_port: int, orig_host: str, orig_port: int
    ) -> Awaitable[Forward]:
        """``ssh -L``: only to a target that allows it, opened from the target's side."""
        self._check_limits()
        gateway = self._gateway
        refusal = gateway.admission.recording(gateway.spool_state())
        if isinstance(refusal, Refuse):
            raise asyncssh.ChannelOpenError(
                asyncssh.OPEN_ADMINISTRATIVELY_PROHIBITED, refusal.message
            )
        try:
            target = self.target()
        except Refused as refused:
            raise asyncssh.ChannelOpenError(
                asyncssh.OPEN_ADMINISTRATIVELY_PROHIBITED, refused.message
            ) from None
        if not target.settings.allow_forwarding:
            self._refuse_channel(
                Refuse(
                    f"port forwarding is not allowed to target {target.name!r}",
                    "port forwarding not allowed",
                )
            )
        policy = gateway.commands.policy
        if policy is None or policy.moderation(self.login.operator, target.name) is not None:
            # A forwarded connection cannot be watched, so it cannot be moderated; and
            # with no policy readable, whether the target is moderated is unknown.
            self._refuse_channel(
                Refuse(
                    f"port forwarding is not allowed to target {target.name!r}: its sessions "
                    "are moderated (or the policy cannot be read), and a forwarded "
                    "connection cannot be watched",
                    "port forwarding not allowed",
                )
            )
        return self._open_forward(target, (dest_host, dest_port), (orig_host, orig_port))

    async def _open_forward(
        self, target: Target, where: tuple[str, int], origin: tuple[str, int]
    ) -> Forward:
        shown = destination(*where)
        _verdict, recorder = self.start_recording("", (0, 0))
        if recorder is not None:
            recorder.request("direct-tcpip", shown.encode())
        forward = Forward(self, recorder, shown)
        try:
            chan = await self._upstream.open_forward(
                target, lambda: forward.target_end, where, origin
            )
        except Refused as refused:
            if recorder is not None:
                recorder.close(refused.reason)
            log.info("%s: %s", self.describe(), refused.reason)
            raise asyncssh.ChannelOpenError(
                asyncssh.OPEN_CONNECT_FAILED, f"sshtrail: {refused.message}"
            ) from None
        forward.opened(chan)
        self._admit(forward)
        return forward

    def _refuse_channel(self, refusal: Refuse) -> None:
        """Refuse a channel open; the first refusal of a connection is recorded."""
        self._gateway.admission.note(
            self._address, f"{self.describe()}: {refusal.reason}", refusal.kind
        )
        if not self._refusal_recorded:  # once: a flood of opens is not a flood of records
            self._refusal_recorded = True
            self._gateway.recorder(self._start("", (0, 0))).close(refusal.reason)
        raise asyncssh.ChannelOpenError(asyncssh.OPEN_ADMINISTRATIVELY_PROHIBITED, refusal.message)

    # -- the end -------------------------------------------------------------------

    def _no_longer_pending(self) -> None:
        if self._pending:
            self._pending = False
            self._gateway.admission.logged_in_or_gone(self._address)

    def connection_lost(self, exc: Exception | None) -> None:
        self._no_longer_pending()
        self._upstream.close()
        if self._authenticated:
            if self._auth_notice is not None:  # failures before a login that opened nothing
                self._record(f"login with no session, {self._auth_notice}")
            return
        if not self.login.operator:
            return
        # A login that never succeeded is audit data too: a session refused, with
        # every failed attempt.
        known = self._gateway.policy.operator(self.login.operator) is not None
        kind = "authentication failed" if known else "unknown operator"
        reason = f"refused: {kind}"
        if self._refused_attempt is not None:
            reason = self._refused_attempt.reason
        if self._failures:
            reason += f" ({_attempts(self._failures)})"
        else:
            self._gateway.admission.failed(self._address, self.login.operator)
        if self._refused_attempt is None:  # a refused attempt was counted when refused
            self._gateway.admission.counted(kind)
        log.info("%s: %s", self.describe(), reason)
        self._record(reason)

    def _record(self, reason: str) -> None:
        with contextlib.suppress(RuntimeError):  # the loop is already shutting down
            self._gateway.recorder(self._start("", (0, 0))).close(reason)

    def _start(self, term: str, size: tuple[int, int]) -> Start:
        host, port, user = self._gateway.connector.describe(self.login.target)
        return Start(
            t=0,
            operator=self.login.operator[:4096],
            client=self.client,
            target=(self.login.target or "")[:4096],
            host=host,
            port=port,
            user=user,
            gateway=self._gateway.settings.instance,
            term=term[:4096],
            cols=size[0],
            rows=size[1],
            started_at=time.time_ns(),
        )


def _attempts(failures: Counter[str]) -> str:
    total = sum(failures.values())
    methods = ", ".join(f"{method} {count}" for method, count in sorted(failures.items()))
    return f"{total} failed attempt{'s' if total != 1 else ''}: {methods}"
