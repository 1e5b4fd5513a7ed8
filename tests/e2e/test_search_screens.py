"""Issue 15's session, as an operator types it, through the real gateway, store, index
and CLI: vim and less on the alternate screen, then commands after them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sshtrail import migrate
from tests.corpus.record import type_scenario
from tests.corpus.scenarios import FILES, SCENARIOS
from tests.support.cli import sshtrail
from tests.support.consumers import write_config
from tests.support.gateway import GatewayProcess
from tests.support.kafka import Broker
from tests.support.recorded import store_and_index

pytestmark = pytest.mark.e2e

SESSION = next(s for s in SCENARIOS if s.name == "bash-fullscreen")


def test_vim_and_less_screens_are_found_and_show_lists_only_typed_commands(
    tmp_path: Path, broker: Broker, gateway: GatewayProcess
) -> None:
    work = tmp_path / "work"
    work.mkdir()
    for name, content in FILES.items():
        (work / name).write_text(content)
    type_scenario(gateway, work, SESSION)

    store_url, search_url = f"sqlite:///{tmp_path / 'store.db'}", f"sqlite:///{tmp_path / 's.db'}"
    config = write_config(
        tmp_path / "sshtrail.toml", broker.bootstrap_servers, gateway.topic, store_url, search_url
    )
    migrate.upgrade(store_url)
    store_and_index(config, store_url, search_url, sessions=1)

    for marker, line in (
        ("VIM-MARKER-7215", "VIM-MARKER-7215 in the notes"),
        ("LESS-MARKER-5093", "LESS-MARKER-5093 shown by less"),
    ):
        hits = json.loads(sshtrail(config, "search", marker, "--kind", "screen", "--json").stdout)
        assert [hit["text"] for hit in hits] == [line]
        assert hits[0]["t"] > 0  # the replay can open there
    after = json.loads(sshtrail(config, "search", "after-42", "--json").stdout)
    assert [hit["kind"] for hit in after] == ["output"]  # what followed vim is searchable

    [row] = json.loads(sshtrail(config, "sessions", "--json").stdout)
    shown = json.loads(sshtrail(config, "show", row["short_id"], "--json").stdout)
    typed = [c["command"] for c in shown["commands"][1:]]  # [0]: the exec that started bash
    assert typed == list(SESSION.commands)
    assert all(c["certain"] for c in shown["commands"])
    assert row["exit_status"] == 4
