"""A newcomer's first minutes, exactly as README.md tells them, on a fresh copy.

The README's first command runs in a fresh copy of the repository (every file
git tracks or would track, no virtualenv, no state): it creates the virtualenv,
installs sshtrail and starts the stack with the demo. The ``ssh`` command it
prints is then typed into a pseudo-terminal like a person would; afterwards the
README's ``sessions``, ``search`` and ``replay`` commands show that session.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pexpect
import pytest

from sshtrail.broker import free_port
from tests.support.consumers import wait_for
from tests.support.services import unavailable

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]


def readme_first_command() -> str:
    """The first line of the first ``sh`` block under "Two commands", comment removed."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split("\n## Two commands", 1)[1]
    block = section.split("```sh\n", 1)[1].split("```", 1)[0]
    return block.splitlines()[0].split("#", 1)[0].strip()


def fresh_copy(destination: Path) -> Path:
    """What a clone of this working tree holds: tracked and untracked-but-not-ignored files."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=False,
        timeout=60,
    )
    if listed.returncode != 0:
        unavailable(f"{ROOT} is not a git checkout: {listed.stderr.decode().strip()}")
    for name in filter(None, listed.stdout.decode().split("\0")):
        source = ROOT / name
        if source.is_file():  # a file deleted but not yet committed is listed too
            (destination / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, destination / name)
    return destination


@pytest.mark.timeout(900)
def test_readme_first_command_then_the_printed_ssh_then_sessions_and_search(
    tmp_path: Path,
) -> None:
    command = readme_first_command()
    assert command == "make up"
    clone = fresh_copy(tmp_path / "sshtrail")
    assert not (clone / ".venv").exists()
    assert not (clone / "sshtrail-data").exists()
    # Free ports instead of 9092 and 2222, which this machine may be using.
    ports = {
        "SSHTRAIL_BROKER__PORT": str(free_port()),
        "SSHTRAIL_GATEWAY__PORT": str(free_port()),
        "SSHTRAIL_WEB__PORT": str(free_port()),
    }
    env = {**os.environ, "TERM": "xterm", **ports}
    env.pop("VIRTUAL_ENV", None)
    up = pexpect.spawn(
        "/bin/sh",
        ["-c", command],
        cwd=clone,
        env=env,
        timeout=600,
        encoding="utf-8",
        codec_errors="replace",
    )
    try:
        up.expect(r"\n(ssh -i [^\r\n]+)\r?\n")  # after the install: the command to try
        ssh_command = up.match.group(1)
        up.expect("ready  press Ctrl-C to stop", timeout=60)
        _type_a_session(ssh_command, clone)
        wait_for(lambda: _closed(clone), what="the session in `sshtrail sessions`")
        sessions = json.loads(_readme_command(clone, "sessions", "--json"))
        [session] = sessions
        assert (session["operator"], session["target"]) == ("demo", "demo")
        table = _readme_command(clone, "sessions")
        assert session["short_id"] in table
        wait_for(
            # Exit 1 until it is indexed: nothing matches yet.
            lambda: "newcomer-42" in _readme_command(clone, "search", "newcomer-42", ok=(0, 1)),
            what="the session's output in `sshtrail search`",
        )
        found = _readme_command(clone, "search", "newcomer")
        assert f"replay: sshtrail replay {session['short_id']}" in found
        assert "echo [newcomer]-$((6*7))" in found  # the command as typed, the match marked
        replayed = _readme_command(clone, "replay", session["short_id"], "--idle-limit", "0.1")
        assert "newcomer-42" in replayed
    finally:
        up.sendintr()  # Ctrl-C in the terminal that runs `make up`
        up.expect(pexpect.EOF, timeout=60)
        up.close()
    # Ctrl-C reaches make too, which reports the interrupt and dies of it, as it
    # does for a person; what matters is that sshtrail stopped cleanly.
    said = up.before or ""
    assert "stopped  on SIGINT" in said, said
    assert "Traceback" not in said, said


def _type_a_session(ssh_command: str, clone: Path) -> None:
    """Paste the printed command into a terminal, run one command, exit."""
    argv = shlex.split(ssh_command)
    shell = pexpect.spawn(
        argv[0],
        argv[1:],
        cwd=clone,
        timeout=60,
        dimensions=(24, 80),
        env={**os.environ, "TERM": "xterm"},
    )
    shell.sendline("PS1='READY> '")
    shell.expect("READY> ")
    shell.expect("READY> ")  # the echo of the line, then the prompt itself
    shell.sendline("echo newcomer-$((6*7))")
    shell.expect("newcomer-42")
    shell.expect("READY> ")
    shell.sendline("exit")
    shell.expect(pexpect.EOF)
    shell.close()


def _readme_command(clone: Path, *argv: str, ok: tuple[int, ...] = (0,)) -> str:
    """``.venv/bin/sshtrail ...`` in the copy's folder, as the README shows."""
    result = subprocess.run(
        [str(clone / ".venv" / "bin" / "sshtrail"), *argv],
        cwd=clone,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode in ok, result.stderr
    return result.stdout


def _closed(clone: Path) -> bool:
    rows = json.loads(_readme_command(clone, "sessions", "--json"))
    return [row["status"] for row in rows] == ["closed"]


def test_readme_names_the_commands_it_runs() -> None:
    """The README's walk-through uses the commands the test above runs."""
    readme = (ROOT / "README.md").read_text()
    for shown in (
        ".venv/bin/sshtrail sessions",
        ".venv/bin/sshtrail search",
        ".venv/bin/sshtrail replay",
    ):
        assert re.search(re.escape(shown), readme), shown
