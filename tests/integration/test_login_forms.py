"""Issue 33: ``OPERATOR@TARGET`` logins, as scp, sftp and rsync take them with no options.

The real OpenSSH ``scp``, ``sftp`` and ``rsync`` (over the real ``ssh``) copy files
both ways through the real gateway to the real ``sshd`` as ``alice@t1@127.0.0.1``;
the target is this machine, so both ends are compared byte for byte. A malformed
login is told why before authentication, in the banner ``ssh`` prints.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.gateway import GatewayProcess
from tests.support.kafka import Broker
from tests.support.services import unavailable
from tests.support.sshd import SshdTarget, isolated

pytestmark = pytest.mark.integration

DESTINATION = "alice@t1@127.0.0.1"


@pytest.fixture(scope="module")
def gateway(
    tmp_path_factory: pytest.TempPathFactory, broker: Broker, sshd: SshdTarget
) -> Iterator[GatewayProcess]:
    """One gateway for the module: every test here only copies files through it."""
    process = GatewayProcess(tmp_path_factory.mktemp("gw"), broker.bootstrap_servers, sshd)
    process.start()
    try:
        yield process
    finally:
        process.stop()


@pytest.fixture
def ends(tmp_path: Path) -> tuple[Path, Path, bytes]:
    """A local and a "remote" folder, and the bytes of ``local/up.bin``."""
    local, remote = tmp_path / "local", tmp_path / "remote"
    local.mkdir()
    remote.mkdir()
    content = os.urandom(200_000) + bytes(range(256))
    (local / "up.bin").write_bytes(content)
    (remote / "down.bin").write_bytes(content[::-1])
    return local, remote, content


def run(argv: list[str]) -> None:
    done = subprocess.run(argv, capture_output=True, timeout=60, check=False)
    assert done.returncode == 0, (argv[0], done.stderr.decode(errors="replace"))


def test_scp_both_ways_with_the_login_in_the_destination(
    gateway: GatewayProcess, ends: tuple[Path, Path, bytes]
) -> None:
    local, remote, content = ends
    scp = ["scp", *isolated(gateway.operator_key, gateway.known_hosts), "-P", str(gateway.port)]
    run([*scp, str(local / "up.bin"), f"{DESTINATION}:{remote}/up.bin"])
    run([*scp, f"{DESTINATION}:{remote}/down.bin", str(local / "down.bin")])
    assert (remote / "up.bin").read_bytes() == content
    assert (local / "down.bin").read_bytes() == content[::-1]


def test_sftp_both_ways_with_the_login_in_the_destination(
    gateway: GatewayProcess, ends: tuple[Path, Path, bytes], tmp_path: Path
) -> None:
    local, remote, content = ends
    batch = tmp_path / "batch"
    batch.write_text(
        f"put {local}/up.bin {remote}/up.bin\nget {remote}/down.bin {local}/down.bin\n"
    )
    sftp = ["sftp", *isolated(gateway.operator_key, gateway.known_hosts), "-P", str(gateway.port)]
    run([*sftp, "-b", str(batch), DESTINATION])
    assert (remote / "up.bin").read_bytes() == content
    assert (local / "down.bin").read_bytes() == content[::-1]


def test_rsync_both_ways_with_the_login_in_the_destination(
    gateway: GatewayProcess, ends: tuple[Path, Path, bytes]
) -> None:
    if shutil.which("rsync") is None:
        unavailable("rsync is not installed (apt-get install rsync)")
    local, remote, content = ends
    shell = " ".join(
        ["ssh", *isolated(gateway.operator_key, gateway.known_hosts), "-p", str(gateway.port)]
    )
    run(["rsync", "-e", shell, str(local / "up.bin"), f"{DESTINATION}:{remote}/up.bin"])
    run(["rsync", "-e", shell, f"{DESTINATION}:{remote}/down.bin", str(local / "down.bin")])
    assert (remote / "up.bin").read_bytes() == content
    assert (local / "down.bin").read_bytes() == content[::-1]


@pytest.mark.parametrize(
    ("login", "told"),
    [
        ("alice@t1@", "malformed login 'alice@t1@': the target 't1@' is not a name"),
        ("@t1", "malformed login '@t1': log in as OPERATOR@TARGET (or OPERATOR:TARGET)"),
    ],
)
def test_a_malformed_login_is_told_why_before_authentication(
    gateway: GatewayProcess, login: str, told: str
) -> None:
    # LogLevel=INFO: OpenSSH prints a banner at INFO and above, and the isolated
    # options ask for ERROR.
    options = [
        "LogLevel=INFO" if option == "LogLevel=ERROR" else option
        for option in isolated(gateway.operator_key, gateway.known_hosts)
    ]
    argv = ["ssh", "-T", *options, "-p", str(gateway.port), "-l", login, "127.0.0.1", "true"]
    done = subprocess.run(argv, capture_output=True, timeout=60, check=False)
    assert done.returncode == 255
    assert told in done.stderr.decode(errors="replace"), done.stderr
