"""The package boundaries hold, and the check of them would catch a breach."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("sshtrail", "producer", "consumer", "migrations")
LINT = Path(sys.executable).with_name("lint-imports")


def lint(tree: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(LINT), "--config", str(tree / "pyproject.toml")],
        cwd=tree,
        env={**os.environ, "PYTHONPATH": str(tree)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    for package in PACKAGES:
        shutil.copytree(
            ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__")
        )
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def test_the_tree_keeps_its_contracts(tree: Path) -> None:
    result = lint(tree)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


@pytest.mark.parametrize(
    ("where", "line", "contract"),
    [
        ("sshtrail/leak.py", "import consumer.runner", "The shared package sits below both halves"),
        ("producer/leak.py", "import consumer.store", "never import each other"),
        ("consumer/leak.py", "from confluent_kafka import Consumer", "librdkafka is reached"),
        ("migrations/leak.py", "from sshtrail.wire import decode_chunk", "Migrations keep"),
    ],
)
def test_a_breach_of_each_contract_is_caught(
    tree: Path, where: str, line: str, contract: str
) -> None:
    (tree / where).write_text(f'"""A deliberate breach."""\n\n{line}\n')
    result = lint(tree)
    assert result.returncode != 0
    assert f"{contract}" in result.stdout
    assert "BROKEN" in result.stdout
