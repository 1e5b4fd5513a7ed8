"""The gateway's side towards targets: its SSH connections to them, and channels on those.

:class:`TargetConnector` logs the gateway in to a target with the target's
key and verifies its host key -- one pinned in the settings, or, for a
target with ``trust_on_first_use``, the first one it presents, pinned in
``<state_dir>/gateway/known_hosts``. First use is pinned once: concurrent
first connections to a target wait for one pinning, and a second, different
key is refused -- in every worker of the gateway: first use holds a lock on
``known_hosts.lock`` from connecting to pinning, so a second worker waits
for the first one's pin and verifies against it. :class:`Upstream` is one
operator connection's way to its target: one SSH connection opened on first
use, and the session channels and forwarded connections opened on it.

This is the one place asyncssh's errors from targets are translated: into
:class:`~producer.policy.Refused`, whose ``message`` the operator sees
(without the target's address: the log has it) and whose ``reason`` the
audit record keeps.
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import asyncssh
from asyncssh.misc import TermModes

from producer.policy import Policy, Refused, Target

log = logging.getLogger(__name__)


def describe_error(exc: BaseException) -> str:
    """An asyncssh or socket error in a few words."""
    if isinstance(exc, asyncssh.DisconnectError):
        return exc.reason
    return str(exc) or type(exc).__name__


class TargetConnector:
    """Opens the gateway's SSH connections to targets (shared by all operator connections)."""

    def __init__(
        self, policy: Policy, known_hosts: Path, connect_timeout: float, ciphers: list[str]
    ) -> None:
        self._policy = policy
        self._ciphers = ciphers or ()
        self._known_hosts = known_hosts
        self._timeout = connect_timeout
        self._first_use: dict[str, asyncio.Lock] = {}

    def describe(self, name: str | None) -> tuple[str, int, str]:
        """(host, port, user) of a target, or blanks when there is no such target."""
        target = self._policy.target(name) if name else None
        if target is None:
            return ("", 0, "")
        return (target.settings.host, target.settings.port, target.settings.user)

    async def connect(self, target: Target) -> asyncssh.SSHClientConnection:
        """Log in to ``target`` with its configured key; :class:`Refused` on failure."""
        if target.host_keys:
            return await self._connect(target, list(target.host_keys))
        if not target.settings.trust_on_first_use:  # Policy rejects this at start-up
            raise Refused(f"no host key is pinned for {target.name}", "no host key")
        pinned = self._pinned(target)
        if pinned:
            return await self._connect(target, pinned)
        # First use: one connection at a time pins; the others then verify against it.
        # Across a gateway's workers too: the file lock is held for the whole first use.
        lock = self._first_use.setdefault(target.name, asyncio.Lock())
        async with lock:
            loop = asyncio.get_running_loop()
            held = await loop.run_in_executor(None, self._lock_first_use)
            try:
                pinned = self._pinned(target)
                if pinned:
                    return await self._connect(target, pinned)
                conn = await self._connect(target, None)
                self._pin(target, conn)
                return conn
            finally:
                os.close(held)

    def _lock_first_use(self) -> int:
        """An exclusive lock on ``known_hosts.lock`` (blocks: on an executor thread);
        released when the descriptor returned is closed."""
        self._known_hosts.parent.mkdir(parents=True, exist_ok=True)
        path = self._known_hosts.with_name(self._known_hosts.name + ".lock")
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX)
        return fd

    async def _connect(
        self, target: Target, pinned: list[asyncssh.SSHKey] | None
    ) -> asyncssh.SSHClientConnection:
        settings = target.settings
        try:
            connecting = asyncssh.connect(
                settings.host,
                settings.port,
                username=settings.user,
                client_keys=[target.key],
                known_hosts=None if pinned is None else (pinned, [], []),
                config=None,
                agent_path=None,
                agent_forwarding=False,
                x11_forwarding=False,
                preferred_auth="publickey",
                encoding=None,
                encryption_algs=self._ciphers,
            )
            return await asyncio.wait_for(connecting, self._timeout)
        except asyncssh.HostKeyNotVerifiable:
            log.error(
                "target %s (%s:%d) presented a host key that is not the one pinned for it",
                target.name,
                settings.host,
                settings.port,
            )
            raise Refused(
                f"target {target.name} presented a host key that is not the one pinned for "
                "it; refusing to connect (the target may have been replaced, or this is an "
                "interception). An administrator must check and update its host_keys.",
                "target host key mismatch",
            ) from None
        except asyncssh.PermissionDenied:
            raise Refused(
                f"the gateway's key for {target.name} was refused by the target",
                "target denied the gateway's key",
            ) from None
        except (TimeoutError, OSError, asyncssh.Error) as exc:
            reason = describe_error(exc)
            log.warning(
                "target %s (%s:%d) unreachable: %s",
                target.name,
                settings.host,
                settings.port,
                reason,
            )
            raise Refused(
                f"cannot reach target {target.name}",
                "target unreachable",
                reason=f"target unreachable: {reason}",
            ) from None

    def _pinned(self, target: Target) -> list[asyncssh.SSHKey]:
        if not self._known_hosts.exists():
            return []
        prefix = f"[{target.settings.host}]:{target.settings.port} "
        return [
            asyncssh.import_public_key(line[len(prefix) :])
            for line in self._known_hosts.read_text().splitlines()
            if line.startswith(prefix)
        ]

    def _pin(self, target: Target, conn: asyncssh.SSHClientConnection) -> None:
        """Pin ``conn``'s host key for ``target``, unless another worker of the gateway
        pinned one first (the file is locked while it is read and appended to): then
        ``conn`` must have presented that key, or it is closed and refused."""
        key = conn.get_server_host_key()
        if key is None:
            return
        self._known_hosts.parent.mkdir(parents=True, exist_ok=True)
        line = f"[{target.settings.host}]:{target.settings.port} "
        line += key.export_public_key("openssh").decode().strip()
        with self._known_hosts.open("a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)  # a few microseconds: no other lock taken
            pinned = self._pinned(target)
            if not pinned:
                handle.write(line + "\n")
        if pinned:
            if any(k.public_data == key.public_data for k in pinned):
                return
            conn.close()
            log.error(
                "target %s presented a host key that is not the one another worker just "
                "pinned for it",
                target.name,
            )
            raise Refused(
                f"target {target.name} presented a host key that is not the one pinned for "
                "it; refusing to connect (the target may have been replaced, or this is an "
                "interception). An administrator must check and update its host_keys.",
                "target host key mismatch",
            )
        log.warning(
            "target %s: trusted its host key on first use and pinned it in %s",
            target.name,
            self._known_hosts,
        )


class Upstream:
    """One operator connection's SSH connection to its target, opened on first use."""

    def __init__(self, connector: TargetConnector) -> None:
        self._connector = connector
        self._conn: asyncssh.SSHClientConnection | None = None
        self._lock = asyncio.Lock()

    async def _connection(self, target: Target) -> asyncssh.SSHClientConnection:
        async with self._lock:
            if self._conn is None:
                self._conn = await self._connector.connect(target)
            return self._conn

    async def open_session(
        self,
        target: Target,
        factory: Callable[[], asyncssh.SSHClientSession[bytes]],
        *,
        command: str | None,
        subsystem: str | None,
        env: Mapping[bytes, bytes],
        term: str | None,
        size: tuple[int, int, int, int],
        modes: TermModes,
    ) -> asyncssh.SSHClientChannel[bytes]:
        """A session channel on the target, asking for what the operator asked for."""
        conn = await self._connection(target)
        options: dict[str, Any] = {}
        if term is not None:
            options = {"term_type": term, "term_size": size, "term_modes": modes}
        try:
            chan, _ = await conn.create_session(
                factory,
                command=command,
                subsystem=subsystem,
                env={bytes(k): bytes(v) for k, v in env.items()} or None,
                request_pty=term is not None,
                encoding=None,
                **options,
            )
        except (OSError, asyncssh.Error) as exc:
            what = f"subsystem {subsystem}" if subsystem else "command" if command else "shell"
            reason = describe_error(exc)
            raise Refused(
                f"the target refused the {what}: {reason}",
                "target refused the channel",
                reason=f"target refused the {what}: {reason}",
            ) from None
        return chan

    async def open_forward(
        self,
        target: Target,
        factory: Callable[[], asyncssh.SSHTCPSession[bytes]],
        where: tuple[str, int],
        origin: tuple[str, int],
    ) -> asyncssh.SSHTCPChannel[bytes]:
        """A TCP connection to ``where``, opened from the target."""
        conn = await self._connection(target)
        try:
            chan, _ = await conn.create_connection(factory, *where, *origin)
        except (OSError, asyncssh.Error) as exc:
            reason = describe_error(exc)
            shown = f"[{where[0]}]:{where[1]}" if ":" in where[0] else f"{where[0]}:{where[1]}"
            raise Refused(
                f"cannot reach {shown}: {reason}",
                "forwarding failed",
                reason=f"forwarding to {shown} failed: {reason}",
            ) from None
        return chan

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
