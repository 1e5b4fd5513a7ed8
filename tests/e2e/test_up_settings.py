"""Issue 33: commands typed in the folder where ``sshtrail up`` runs use its settings.

The real ``sshtrail up --demo`` runs with its ports moved by ``SSHTRAIL_*``
variables; ``sshtrail lag`` and ``sshtrail config``, run later in the same
folder in real child processes without those variables, reach the same broker
and say where their settings came from; one pointed at another settings file
does not take them, and says so.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from sshtrail.broker import free_port
from tests.support.cli import Running

pytestmark = pytest.mark.e2e


def command(folder: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    """``sshtrail ARGV`` in ``folder`` with no ``SSHTRAIL_*`` variable of its own."""
    clean = {var: value for var, value in os.environ.items() if not var.startswith("SSHTRAIL_")}
    return subprocess.run(
        [sys.executable, "-m", "sshtrail", *argv],
        cwd=folder,
        env=clean,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_commands_in_up_s_folder_find_the_settings_it_ran_with(tmp_path: Path) -> None:
    broker_port = free_port()
    env = {
        "SSHTRAIL_BROKER__PORT": str(broker_port),
        "SSHTRAIL_GATEWAY__PORT": str(free_port()),
        "SSHTRAIL_WEB__PORT": str(free_port()),
    }
    record = tmp_path.resolve() / "sshtrail-data" / "up-environment.json"
    up = Running("up", "--demo", cwd=tmp_path, env=env)
    try:
        said = up.expect("settings  ")
        variables = "SSHTRAIL_BROKER__PORT, SSHTRAIL_GATEWAY__PORT, SSHTRAIL_WEB__PORT"
        assert f"{variables} recorded in {record}" in said
        up.expect("ready")

        config = command(tmp_path, "config")
        assert config.returncode == 0, config.stderr
        effective = json.loads(config.stdout)
        assert effective["broker"]["port"] == broker_port
        assert config.stderr.splitlines() == [
            "settings file: none (defaults)",
            "environment: no SSHTRAIL_* variables",
            f"recorded by sshtrail up in sshtrail-data/up-environment.json: {variables}",
        ]

        lag = command(tmp_path, "lag")
        assert lag.returncode in (0, 1), lag.stdout + lag.stderr  # 2: broker unreachable
        assert "sshtrail-store" in lag.stdout

        other = tmp_path / "other.toml"
        other.write_text("")
        elsewhere = command(tmp_path, "--config", str(other), "config")
        assert json.loads(elsewhere.stdout)["broker"]["port"] == 9092
        assert (
            "sshtrail-data/up-environment.json was not used: sshtrail up read no settings "
            f"file, this command reads {other.resolve()}" in elsewhere.stderr
        )
    finally:
        status, _, err = up.stop(signal.SIGINT)
    assert status == 0, err
    # Kept once the stack stops: the store and its settings are still there to read.
    assert command(tmp_path, "config").stderr.endswith(f"{variables}\n")
