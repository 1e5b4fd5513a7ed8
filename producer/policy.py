"""Who may log in through the gateway, and to which targets.

Operators log in as ``OPERATOR:TARGET`` (the Warpgate convention). Their keys,
user CAs, optional password hash and allowed targets come from the settings,
which are validated here once, at start-up, with errors naming the entry.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import asyncssh

from sshtrail.errors import ConfigError, InvalidError
from sshtrail.passwords import hash_password, verify_password
from sshtrail.settings import OperatorSettings, Settings, TargetSettings


class Refused(InvalidError):
    """A login or session is not allowed; ``message`` is shown to the operator, ``kind``
    counted by the gateway's metrics, ``reason`` recorded."""

    def __init__(
        self,
        message: str,
        kind: str,
        detail: str = "",
        *,
        reason: str | None = None,
        exit_status: int = 1,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.kind = kind  # what the gateway's metrics count it as: a few fixed words
        self.detail = detail
        #: What the operator's channel exits with (126, "cannot execute", for a command
        #: the policy rejects, as a shell answers a command it may not run).
        self.exit_status = exit_status
        #: The audit event's end reason: ``refused: KIND`` and the detail, unless given
        #: (a target that could not be reached is not a refusal of the gateway's).
        self.reason = reason if reason is not None else f"refused: {kind}{detail}"


@dataclass(frozen=True)
class Login:
    operator: str
    target: str | None

    @classmethod
    def parse(cls, username: str) -> Login:
        operator, sep, target = username.partition(":")
        return cls(operator, target if sep and target else None)


@dataclass(frozen=True)
class Target:
    settings: TargetSettings
    key: asyncssh.SSHKey
    host_keys: tuple[asyncssh.SSHKey, ...]

    @property
    def name(self) -> str:
        return self.settings.name


class Policy:
    """The operators and targets of one gateway process."""

    def __init__(self, settings: Settings, client_keys: dict[str, asyncssh.SSHKey]) -> None:
        self._operators = {operator.name: operator for operator in settings.operators}
        self._dummy = hash_password(os.urandom(16).hex())
        self._authorized: dict[str, asyncssh.SSHAuthorizedKeys] = {}
        for operator in settings.operators:
            setting = f"operators.{operator.name}"
            # The login name is OPERATOR:TARGET, so certificates are matched on the
            # operator's name as principal rather than on the login name.
            lines = [
                *operator.keys,
                *(
                    f'cert-authority,principals="{operator.name}" {ca}'
                    for ca in operator.cert_authorities
                ),
            ]
            try:
                self._authorized[operator.name] = asyncssh.import_authorized_keys("\n".join(lines))
            except (asyncssh.KeyImportError, ValueError) as exc:
                raise ConfigError(f"bad key: {exc}", key=f"{setting}.keys") from None
            if operator.password_hash and not operator.password_hash.startswith("scrypt$"):
                raise ConfigError(
                    "not a hash from 'sshtrail password-hash'", key=f"{setting}.password_hash"
                )
        self._targets: dict[str, Target] = {}
        for target in settings.targets:
            host_keys = []
            for index, text in enumerate(target.host_keys):
                try:
                    host_keys.append(asyncssh.import_public_key(text))
                except (asyncssh.KeyImportError, ValueError) as exc:
                    raise ConfigError(
                        f"entry {index} is not a public key: {exc}",
                        key=f"targets.{target.name}.host_keys",
                    ) from None
            if not host_keys and not target.trust_on_first_use:
                raise ConfigError(
                    "no host_keys and trust_on_first_use is off: the gateway "
                    "could never verify this target",
                    key=f"targets.{target.name}.host_keys",
                )
            self._targets[target.name] = Target(target, client_keys[target.name], tuple(host_keys))

    def operator(self, name: str) -> OperatorSettings | None:
        return self._operators.get(name)

    def authorized_keys(self, name: str) -> asyncssh.SSHAuthorizedKeys | None:
        return self._authorized.get(name)

    def target(self, name: str) -> Target | None:
        return self._targets.get(name)

    def targets_for(self, operator: str) -> list[str]:
        allowed = self._operators[operator].targets
        return sorted(self._targets) if "*" in allowed else sorted(allowed)

    @property
    def passwords_in_use(self) -> bool:
        """Whether any operator may log in with a password: then every name is
        offered password logins, so what is offered tells nothing about a name."""
        return any(operator.password_hash for operator in self._operators.values())

    def check_password(self, operator: str, password: str) -> bool:
        """Whether ``password`` is ``operator``'s. Costs the same whether or not the
        operator exists or has a password (a dummy hash is checked then): timing
        tells nothing about names. Slow on purpose (scrypt): call off the event loop."""
        entry = self._operators.get(operator)
        stored = entry.password_hash if entry and entry.password_hash else self._dummy
        return verify_password(stored, password) and stored is not self._dummy

    def resolve(self, login: Login) -> Target:
        """The target this login may use, or :class:`Refused` saying why not."""
        allowed = self.targets_for(login.operator)
        listing = ", ".join(allowed) if allowed else "(none)"
        if login.target is None:
            raise Refused(
                f"no target given. Log in as {login.operator}:TARGET; your targets: {listing}",
                "no target given",
            )
        if login.target not in allowed:
            raise Refused(
                f"target {login.target!r} is not one of yours: {listing}",
                "target not allowed",
            )
        return self._targets[login.target]
