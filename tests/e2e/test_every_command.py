"""Every subcommand through the installed console script: ``--help``, a flag it does not
have, and (where it reads a session) an id no session has -- the exit status each
promises, its own usage, and never a traceback."""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from sshtrail import migrate
from sshtrail.cli.main import build_parser
from sshtrail.escrow import generate
from tests.support.recordings import SIGNER

pytestmark = pytest.mark.e2e

#: The commands that read one session, and how to ask them for one that does not exist.
MISSING = {
    "show": ["ffffffffffff"],
    "replay": ["ffffffffffff"],
    "export": ["ffffffffffff", "--format", "raw"],
    "transfers": ["--session", "ffffffffffff"],
    "verify": ["ffffffffffff", "--trust", "{signer}"],
    "watch": ["ffffffffffff"],
    "reveal": ["ffffffffffff", "--key", "{escrow}", "--reason", "test"],
    "access-log": ["--session", "ffffffffffff"],
    "terminate": ["ffffffffffff", "--reason", "test"],
    "alerts hunt": ["{rule}", "--session", "ffffffffffff"],
}
#: A Sigma rule ``alerts hunt`` can load.
RULE = """\
title: Reboot Typed
id: 5b1f8e0e-3c1d-4f7a-9a0e-2f2d8c3b7a11
author: sshtrail tests
logsource: {product: linux, category: process_creation}
detection: {selection: {Image|endswith: /reboot}, condition: selection}
"""


def commands() -> list[str]:
    """Every command, and every action of one that has them (``alerts hunt``)."""
    action = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    names = []
    for name, parser in sorted(action.choices.items()):
        names.append(name)
        for inner in parser._actions:
            if isinstance(inner, argparse._SubParsersAction):
                names += [f"{name} {sub}" for sub in sorted(inner.choices or ())]
    return names


def test_every_command_answers_help_a_bad_flag_and_a_missing_session(tmp_path: Path) -> None:
    (tmp_path / "sshtrail-data").mkdir(mode=0o700)
    migrate.upgrade(f"sqlite:///{tmp_path / 'sshtrail-data' / 'sshtrail.db'}")
    generate(tmp_path / "escrow")
    (tmp_path / "rule.yml").write_text(RULE)
    (tmp_path / "signer.pub").write_bytes(
        SIGNER.public_key().public_bytes(Encoding.OpenSSH, PublicFormat.OpenSSH)
    )
    names = commands()
    assert set(MISSING) <= set(names)
    assert len(names) >= 20
    runs: list[tuple[str, str, list[str]]] = []
    for command in names:
        runs += [(command, "help", ["--help"]), (command, "bad flag", ["--no-such-flag"])]
        if command in MISSING:
            fill = {
                "escrow": tmp_path / "escrow",
                "signer": tmp_path / "signer.pub",
                "rule": tmp_path / "rule.yml",
            }
            runs.append((command, "missing", [a.format(**fill) for a in MISSING[command]]))
    with ThreadPoolExecutor(max_workers=6) as pool:  # one start-up each: run side by side
        results = list(pool.map(lambda r: _run(tmp_path, *r[0].split(), *r[2]), runs))
    for (command, kind, _argv), done in zip(runs, results, strict=True):
        where = (command, kind, done.stdout[-500:], done.stderr[-500:])
        assert "Traceback" not in done.stderr, where
        if kind == "help":
            assert done.returncode == 0, where
            assert done.stdout.startswith(f"usage: sshtrail {command}"), where
        elif kind == "bad flag":
            assert done.returncode == 2, where
            assert done.stderr.startswith(f"usage: sshtrail {command}"), where
            assert f"sshtrail {command}: error: " in done.stderr, where
        else:
            assert done.returncode == 3, where
            assert "sshtrail: error: no session id starts with ffffffffffff" in done.stderr


def _run(folder: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    script = shutil.which("sshtrail", path=str(Path(sys.executable).parent))
    assert script is not None, "the console script is not installed"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SSHTRAIL_")}
    env["SSHTRAIL_KAFKA__BOOTSTRAP_SERVERS"] = "127.0.0.1:9"  # nothing listens: fail fast
    return subprocess.run(
        [script, *argv],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_reading_commands_in_the_wrong_folder_create_nothing_and_say_where_they_looked(
    tmp_path: Path,
) -> None:
    for argv in (["sessions"], ["search", "x"], ["show", "01a2"], ["replay", "01a2"]):
        done = _run(tmp_path, *argv)
        assert done.returncode == 1, (argv, done.stderr)
        assert f"no store at {tmp_path.resolve()}/sshtrail-data/" in done.stderr or (
            f"no search index at {tmp_path.resolve()}/sshtrail-data/search.db" in done.stderr
        ), (argv, done.stderr)
        assert "SSHTRAIL_CONFIG" in done.stderr
        assert "Traceback" not in done.stderr
    assert list(tmp_path.iterdir()) == []  # no ./sshtrail-data made
