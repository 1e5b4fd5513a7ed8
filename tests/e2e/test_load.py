"""Concurrent interactive sessions through one gateway, reduced for CI.

``SSHTRAIL_TEST_LOAD_SESSIONS`` sessions (default 30) type commands for
``SSHTRAIL_TEST_LOAD_SECONDS`` (default 20) as people type, while a store and an
index member read the topic. Checked here: no session dropped, every output
line the clients saw becomes searchable, the store holds every session
closed and verified. The figures (echo p99 against direct sessions of the
same run, output-to-searchable delay, memory) are printed, not asserted:
``python -m bench.load`` measures them at full size (docs/performance.md).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from consumer import store
from sshtrail.db import make_engine
from tests.support import load
from tests.support.consumers import wait_for
from tests.support.kafka import Broker
from tests.support.knobs import knob
from tests.support.sshd import SshdTarget

pytestmark = pytest.mark.e2e

SESSIONS = int(knob("LOAD_SESSIONS", "30"))
SECONDS = float(knob("LOAD_SECONDS", "20"))


@pytest.mark.timeout(600)
def test_concurrent_interactive_sessions_lose_nothing_and_become_searchable(
    tmp_path: Path, broker: Broker, sshd: SshdTarget
) -> None:
    plan = load.Plan(sessions=SESSIONS, seconds=SECONDS, think=(1.0, 4.0))
    with load.stack(tmp_path, broker.bootstrap_servers, sshd, SESSIONS) as stack:
        result = stack.run(plan)
        print(load.summary(plan, result))  # shown with -s; the figures are bench/load.py's
        assert result.dropped == []
        assert all(log.outputs for log in result.gateway)
        assert result.unsearchable() == []
        engine = make_engine(stack.database_url)
        try:

            def stored() -> list[tuple[str, bool]]:
                with engine.connect() as conn:
                    return [
                        (r.status, r.verified)
                        for r in conn.execute(
                            select(store.SESSIONS.c.status, store.SESSIONS.c.verified)
                        )
                    ]

            wait_for(
                lambda: stored().count(("closed", True)) == SESSIONS,
                timeout=120,
                what=f"{SESSIONS} sessions closed and verified in the store",
            )
        finally:
            engine.dispose()
