"""The test harness's own services behave like the real things they stand for."""

from __future__ import annotations

import subprocess

import pexpect
import pytest

from tests.support.sshd import SshdTarget, ssh_argv

pytestmark = pytest.mark.integration


def test_sshd_runs_commands_and_returns_their_exit_status(sshd: SshdTarget) -> None:
    result = subprocess.run(
        sshd.ssh_command('printf "%s\\n" "a b" c; exit 3'),
        capture_output=True,
        timeout=30,
        check=False,
    )
    assert result.stdout == b"a b\nc\n"
    assert result.returncode == 3


def test_sshd_gives_an_interactive_pty(sshd: SshdTarget) -> None:
    argv = ssh_argv(
        f"{sshd.user}@{sshd.host}", sshd.port, sshd.client_key, sshd.known_hosts, tty=True
    )
    child = pexpect.spawn(argv[0], argv[1:], timeout=20, dimensions=(24, 80))
    try:
        child.sendline("stty size; echo marker-$((6*7))")
        child.expect("24 80")
        child.expect("marker-42")
        child.sendline("exit 5")
        child.expect(pexpect.EOF)
    finally:
        child.close()
    assert child.exitstatus == 5
