"""What ``sshtrail up --demo`` adds: a demo operator, a demo target, and their keys.

Everything lives in ``<state_dir>/demo/`` and is reused by the next run. The
demo target grants a login shell as the current user, so the demo gateway
listens on loopback only.
"""

from __future__ import annotations

import getpass
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

import msgspec

from sshtrail.broker import free_port
from sshtrail.keyfiles import ensure_ed25519, public_line
from sshtrail.passwords import hash_password
from sshtrail.settings import AuditorSettings, OperatorSettings, Settings, TargetSettings

NAME = "demo"


#: The demo auditor's name in the web console.
AUDITOR = "auditor"


@dataclass(frozen=True)
class Demo:
    folder: Path
    port: int  # the demo target's
    #: The demo auditor's password, new on every run (only its hash is written).
    auditor_password: str = ""

    @property
    def operator_key(self) -> Path:
        return self.folder / "operator_ed25519"

    @property
    def gateway_key(self) -> Path:
        """The key the gateway logs in to the demo target with."""
        return self.folder / "gateway_to_target_ed25519"

    @property
    def target_host_key(self) -> Path:
        return self.folder / "target_host_ed25519"

    @property
    def authorized_keys(self) -> Path:
        return self.folder / "target_authorized_keys"

    @property
    def known_hosts(self) -> Path:
        """The operator's known_hosts, holding the gateway's host key."""
        return self.folder / "known_hosts"

    @property
    def config(self) -> Path:
        return self.folder / "sshtrail.toml"


def prepare(settings: Settings) -> tuple[Settings, Demo]:
    """Create (or reuse) the demo keys; return the settings with the demo added.

    The combined settings are also written to ``demo/sshtrail.toml`` for the
    stack's child processes.
    """
    demo = Demo(settings.state_path.resolve() / "demo", free_port(), secrets.token_urlsafe(12))
    ensure_ed25519(demo.operator_key, "sshtrail demo operator")
    ensure_ed25519(demo.gateway_key, "sshtrail gateway to demo target")
    ensure_ed25519(demo.target_host_key, "sshtrail demo target host key")
    demo.authorized_keys.write_text(public_line(demo.gateway_key) + "\n")
    operator = OperatorSettings(name=NAME, keys=[public_line(demo.operator_key)], targets=[NAME])
    target = TargetSettings(
        name=NAME,
        host="127.0.0.1",
        port=demo.port,
        user=getpass.getuser(),
        key=str(demo.gateway_key),
        host_keys=[public_line(demo.target_host_key)],
    )
    # An admin: the demo is one person trying everything, the lag page included.
    auditor = AuditorSettings(
        name=AUDITOR,
        password_hash=hash_password(demo.auditor_password),
        role="admin",
        terminate=True,
    )
    combined = msgspec.structs.replace(
        settings,
        gateway=msgspec.structs.replace(settings.gateway, listen="127.0.0.1"),
        web=msgspec.structs.replace(settings.web, listen="127.0.0.1"),
        operators=[o for o in settings.operators if o.name != NAME] + [operator],
        targets=[t for t in settings.targets if t.name != NAME] + [target],
        auditors=[a for a in settings.auditors if a.name != AUDITOR] + [auditor],
    )
    demo.config.write_bytes(msgspec.toml.encode(combined))
    return combined, demo


def trust_gateway(settings: Settings, demo: Demo) -> None:
    """Put the gateway's host key in the operator's demo known_hosts."""
    pub = settings.state_file(settings.gateway.host_key, "gateway/ssh_host_ed25519_key")
    line = public_line(pub)
    demo.known_hosts.write_text(f"[127.0.0.1]:{settings.gateway.port} {line}\n")


#: Where OpenSSH's SFTP server program lives (Debian, Fedora, Arch, BSDs and macOS).
SFTP_SERVERS = (
    "/usr/lib/openssh/sftp-server",
    "/usr/libexec/openssh/sftp-server",
    "/usr/lib/ssh/sftp-server",
    "/usr/libexec/sftp-server",
)


def sftp_server() -> str | None:
    """OpenSSH's ``sftp-server`` on this machine, which the demo target serves SFTP with."""
    return next((path for path in SFTP_SERVERS if os.access(path, os.X_OK)), None)


def sftp_command(settings: Settings, demo: Demo) -> str:
    """The same for sftp (and, with scp instead, for scp): ``OPERATOR@TARGET@host``,
    which sftp, scp and rsync split at the last ``@`` as ssh does."""
    return (
        f"sftp -i {demo.operator_key} -o IdentitiesOnly=yes "
        f"-o UserKnownHostsFile={demo.known_hosts} -P {settings.gateway.port} "
        f"{NAME}@{NAME}@127.0.0.1"
    )


def ssh_command(settings: Settings, demo: Demo) -> str:
    """The command a newcomer types to go through the gateway to the demo target."""
    return (
        f"ssh -i {demo.operator_key} -o IdentitiesOnly=yes "
        f"-o UserKnownHostsFile={demo.known_hosts} -p {settings.gateway.port} "
        f"{NAME}@{NAME}@127.0.0.1"
    )
