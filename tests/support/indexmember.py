"""An index member on a gateway's topic, and what searching its index finds, as a user sees it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.support.cli import sshtrail
from tests.support.consumers import start_member, write_config


def index_config(workdir: Path, servers: str, topic: str) -> Path:
    """Settings for members of ``topic`` with their store and search index in SQLite files
    of ``workdir`` (``store.db``, ``search.db``), for the members and the CLI alike."""
    return write_config(
        workdir / "members.toml",
        servers,
        topic,
        f"sqlite:///{workdir / 'store.db'}",
        search_url=f"sqlite:///{workdir / 'search.db'}",
    )


@contextmanager
def index_member(workdir: Path, servers: str, topic: str) -> Iterator[Path]:
    """An index member on ``topic``, running while the block runs; yields the settings to
    search with (:func:`index_config`)."""
    config = index_config(workdir, servers, topic)
    member = start_member(config, "index")
    try:
        yield config
    finally:
        member.stop()


def searched(config: Path, text: str, *options: str) -> list[dict[str, object]]:
    """The hits ``sshtrail search --json`` prints for ``text``; none while the index is not
    there yet (the command fails until the member has created it)."""
    found = sshtrail(config, "search", text, "--json", *options, check=False, timeout=30)
    return json.loads(found.stdout) if found.stdout.strip() else []
