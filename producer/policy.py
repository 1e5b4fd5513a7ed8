"""Who may log in through the gateway, and to which targets.

Operators log in as ``OPERATOR@TARGET`` (JumpServer's convention, which scp, sftp
and rsync take as it is) or ``OPERATOR:TARGET`` (Warpgate's). Their keys, user CAs,
optional password hash and allowed targets come from the settings, which are
validated here once, at start-up, with errors naming the entry.
"""

from __future__ import annotations

import os
import re
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


#: What an operator's and a target's name may be (the settings' patterns): neither
#: holds ``@`` or ``:``, which is why either can separate them in a login.
_NAME = re.compile(r"[A-Za-z0-9._-]{1,64}")
_SEPARATOR = re.compile(r"[@:]")
#: How much of a malformed login a refusal repeats: enough to recognise it.
_SHOWN = 64


def _shown(text: str) -> str:
    """``text`` as a refusal quotes it: escaped (it came from the network) and cut."""
    return repr(text[:_SHOWN]) + ("..." if len(text) > _SHOWN else "")


@dataclass(frozen=True)
class Login:
    operator: str
    target: str | None

    @classmethod
    def parse(cls, username: str) -> Login:
        """The operator and target of an SSH login name, or :class:`Refused`.

        The first ``@`` or ``:`` splits it. No name may hold either, so every login
        that could succeed splits the same way whichever rule is used; taking the
        first keeps the operator's part a name when the rest is garbage, so the
        refusal can say which part is wrong. (The gateway's host is not in the login
        name: ``ssh a@b@host`` is user ``a@b`` at ``host``, since OpenSSH's clients
        split user and host at the last ``@``.) A separator with nothing after it is
        a login without a target, shown the operator's targets once logged in.
        """
        parts = _SEPARATOR.split(username, maxsplit=1)
        operator, target = parts[0], parts[1] if len(parts) == 2 else ""
        if not _NAME.fullmatch(operator):
            raise Refused(
                f"malformed login {_shown(username)}: log in as OPERATOR@TARGET "
                "(or OPERATOR:TARGET); an operator's name is letters, digits, '.', '_', '-'",
                "malformed login",
            )
        if target and not _NAME.fullmatch(target):
            raise Refused(
                f"malformed login {_shown(username)}: the target {_shown(target)} is not a "
                "name (letters, digits, '.', '_', '-', up to 64)",
                "malformed login",
            )
        return cls(operator, target or None)


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
            # The login name is OPERATOR@TARGET, so certificates are matched on the
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
                f"no target given. Log in as {login.operator}@TARGET; your targets: {listing}",
                "no target given",
            )
        if login.target not in allowed:
            raise Refused(
                f"target {login.target!r} is not one of yours: {listing}",
                "target not allowed",
            )
        return self._targets[login.target]
