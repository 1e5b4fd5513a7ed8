"""The ``uncertain-prompt`` flag end to end: bash sessions typed through the real gateway
to the real sshd -- an empty PS1, an output-looking PS1 (issue 41, cases 21 and 22) and
an ordinary prompt with keys typed ahead -- stored by a real store member, indexed by a
real index member, and listed by the real ``sshtrail sessions`` and ``show``."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pexpect
import pytest

from tests.integration.test_evasion import bash
from tests.support.cli import sshtrail
from tests.support.consumers import start_member, wait_for, write_config
from tests.support.evasiontyping import PROMPT, exits
from tests.support.gateway import GatewayProcess
from tests.support.kafka import Broker
from tests.support.sshd import SshdTarget

pytestmark = pytest.mark.integration


def empty_prompt(child: pexpect.spawn) -> None:
    child.sendline("PS1=''")
    prompted(child, "empty")


def output_prompt(child: pexpect.spawn) -> None:
    child.sendline(r"PS1='total 0\n'")
    prompted(child, "output")


def prompted(child: pexpect.spawn, name: str) -> None:
    """Three commands at a prompt the reader cannot tell apart, each output awaited."""
    time.sleep(0.3)
    for add in (1, 2, 3):
        child.sendline(f"echo {name}-$((40+{add}))")
        child.expect(f"{name}-{40 + add}")
        time.sleep(0.3)


def typed_ahead(child: pexpect.spawn) -> None:
    """An ordinary prompt, and three commands typed while ``sleep`` still runs."""
    child.sendline("sleep 1")
    time.sleep(0.2)
    for line in ("echo ahead-$((40+1))", "echo ahead-$((40+2))", "echo ahead-$((40+3))"):
        child.sendline(line)
    child.expect("ahead-43")
    child.expect(PROMPT)
    for add in (4, 5):
        child.sendline(f"echo plain-$((40+{add}))")
        child.expect(f"plain-{40 + add}")
        child.expect(PROMPT)


def listed(config: Path, *options: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = json.loads(
        sshtrail(config, "sessions", "--json", *options, timeout=30).stdout
    )
    return rows


def test_sessions_with_an_uncertain_prompt_are_flagged_and_listed(
    tmp_path: Path, broker: Broker, sshd: SshdTarget
) -> None:
    gateway = GatewayProcess(tmp_path / "gw", broker.bootstrap_servers, sshd)
    config = write_config(
        tmp_path / "sshtrail.toml",
        broker.bootstrap_servers,
        gateway.topic,
        f"sqlite:///{tmp_path / 'store.db'}",
        search_url=f"sqlite:///{tmp_path / 'search.db'}",
    )
    sshtrail(config, "db", "upgrade", timeout=60)
    members = [start_member(config, "store"), start_member(config, "index")]
    gateway.start()
    drives: list[Callable[[pexpect.spawn], None]] = [empty_prompt, output_prompt, typed_ahead]
    try:
        for drive in drives:
            child = bash(gateway)
            drive(child)
            exits(child)

        def flagged_two() -> bool:
            rows = listed(config)
            return (
                len(rows) == 3
                and all(row["end_reason"] for row in rows)
                and len(listed(config, "--flag", "uncertain-prompt")) == 2
            )

        wait_for(flagged_two, timeout=60, what="three sessions stored, two flagged")
    finally:
        gateway.stop()
        for member in members:
            member.stop()
    by_start = [row["session"] for row in sorted(listed(config), key=lambda r: r["started_at"])]
    empty, output, ordinary = by_start
    flagged = listed(config, "--flag", "uncertain-prompt")
    assert sorted(row["session"] for row in flagged) == sorted([empty, output])
    assert all(row["flags"] == ["uncertain-prompt"] for row in flagged)
    assert {row["session"] for row in listed(config, "--flag", "any")} == {empty, output}
    for session, flags in ((empty, ["uncertain-prompt"]), (ordinary, [])):
        shown = json.loads(sshtrail(config, "show", session, "--json").stdout)
        assert shown["flags"] == flags
    text = sshtrail(config, "show", output).stdout.decode()
    assert "uncertain-prompt" in text
    # Without the index the flag is unknown: said so, and the listing stands.
    (tmp_path / "search.db").rename(tmp_path / "moved.db")
    unknown = sshtrail(config, "sessions", "--json", "--flag", "uncertain-prompt", timeout=30)
    assert json.loads(unknown.stdout) == []
    assert b"uncertain-prompt is unknown" in unknown.stderr
    assert len(listed(config)) == 3
