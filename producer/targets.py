"""Opening the gateway's own SSH connection to a target, with its host key verified.

The target's host key must be one pinned in the settings; a target configured
with ``trust_on_first_use`` pins the first key it presents in
``<state_dir>/gateway/known_hosts`` and is held to it from then on. The
operator's environment (agent, ``~/.ssh/config``) plays no part.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import asyncssh

from producer.policy import Policy, Refused, Target

log = logging.getLogger(__name__)


class TargetConnector:
    def __init__(
        self, policy: Policy, known_hosts: Path, connect_timeout: float, ciphers: list[str]
    ) -> None:
        self._policy = policy
        self._ciphers = ciphers or ()
        self._known_hosts = known_hosts
        self._timeout = connect_timeout
        self._pin_lock = asyncio.Lock()

    def describe(self, name: str | None) -> tuple[str, int, str]:
        """(host, port, user) of a target, or blanks when there is no such target."""
        target = self._policy.target(name) if name else None
        if target is None:
            return ("", 0, "")
        return (target.settings.host, target.settings.port, target.settings.user)

    async def connect(self, target: Target) -> asyncssh.SSHClientConnection:
        """Log in to ``target`` with its configured key; :class:`Refused` on failure."""
        settings = target.settings
        pinned = list(target.host_keys) or self._pinned(target)
        tofu = not pinned
        if tofu and not settings.trust_on_first_use:  # Policy rejects this at start-up
            raise Refused(f"no host key is pinned for {target.name}", "refused: no host key")
        try:
            connecting = asyncssh.connect(
                settings.host,
                settings.port,
                username=settings.user,
                client_keys=[target.key],
                known_hosts=None if tofu else (pinned, [], []),
                config=None,
                agent_path=None,
                agent_forwarding=False,
                x11_forwarding=False,
                preferred_auth="publickey",
                encoding=None,
                encryption_algs=self._ciphers,
            )
            conn = await asyncio.wait_for(connecting, self._timeout)
        except asyncssh.HostKeyNotVerifiable:
            raise Refused(
                f"target {target.name} presented a host key that is not the one pinned for "
                "it; refusing to connect (the target may have been replaced, or this is an "
                "interception). An administrator must check and update its host_keys.",
                "refused: target host key mismatch",
            ) from None
        except asyncssh.PermissionDenied:
            raise Refused(
                f"the gateway's key for {target.name} was refused by the target",
                "refused: target denied the gateway's key",
            ) from None
        except (TimeoutError, OSError, asyncssh.Error) as exc:
            reason = exc.reason if isinstance(exc, asyncssh.DisconnectError) else str(exc)
            reason = reason or type(exc).__name__
            raise Refused(
                f"cannot reach target {target.name}: {reason}", f"target unreachable: {reason}"
            ) from None
        if tofu:
            await self._pin(target, conn)
        return conn

    def _pinned(self, target: Target) -> list[asyncssh.SSHKey]:
        if not self._known_hosts.exists():
            return []
        prefix = f"[{target.settings.host}]:{target.settings.port} "
        keys = []
        for line in self._known_hosts.read_text().splitlines():
            if line.startswith(prefix):
                keys.append(asyncssh.import_public_key(line[len(prefix) :]))
        return keys

    async def _pin(self, target: Target, conn: asyncssh.SSHClientConnection) -> None:
        key = conn.get_server_host_key()
        if key is None:
            return
        async with self._pin_lock:
            if self._pinned(target):
                return
            self._known_hosts.parent.mkdir(parents=True, exist_ok=True)
            line = f"[{target.settings.host}]:{target.settings.port} "
            line += key.export_public_key("openssh").decode().strip()
            with self._known_hosts.open("a") as handle:
                handle.write(line + "\n")
            log.warning(
                "target %s: trusted its host key on first use and pinned it in %s",
                target.name,
                self._known_hosts,
            )
