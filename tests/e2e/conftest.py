"""Fixtures of the whole-system tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.browser import chromium
from tests.support.gateway import GatewayProcess
from tests.support.kafka import Broker
from tests.support.recorded import Recorded
from tests.support.sshd import SshdTarget


@pytest.fixture
def gateway(tmp_path: Path, broker: Broker, sshd: SshdTarget) -> Iterator[GatewayProcess]:
    """A gateway in front of the test sshd, its topic and dead-letter topic created."""
    process = GatewayProcess(tmp_path / "gw", broker.bootstrap_servers, sshd, dead_letters=True)
    process.start()
    yield process
    if process.process is not None and process.process.poll() is None:
        process.stop()


@pytest.fixture(scope="module")
def recorded(
    tmp_path_factory: pytest.TempPathFactory, broker: Broker, sshd: SshdTarget
) -> Recorded:
    sessions = Recorded(tmp_path_factory.mktemp("audit"), broker, sshd)
    sessions.record()
    return sessions


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    """Debian's chromium, headless, for a module's tests of the web console."""
    driver = chromium()
    try:
        yield driver
    finally:
        driver.quit()
