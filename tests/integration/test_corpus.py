"""The search corpus scored: commands and screen text from real recorded sessions.

The recordings in ``tests/corpus/recordings`` were typed through the real gateway
(``python -m tests.corpus.record``); each is indexed by the real index writer on
each backend, then read back the way ``show`` and ``search`` read it.
Goals (issue 15): command precision and recall >= 0.98, screen-text recall >= 0.99.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, select

from consumer.indexer import IndexWriter
from consumer.messages import Received
from sshtrail import search
from sshtrail.db import make_engine
from sshtrail.events import Exec
from sshtrail.promptflag import flagged_ids
from sshtrail.wire import Chunk, decode_chunk
from tests.corpus.record import HERE, read_recording
from tests.corpus.scenarios import SCENARIOS, Scenario

pytestmark = pytest.mark.integration

GOAL_COMMANDS = 0.98
GOAL_SCREENS = 0.99


@pytest.fixture
def indexed(database_url: str) -> Iterator[tuple[Engine, dict[str, list[Chunk]]]]:
    engine = make_engine(database_url)
    search.ensure_schema(engine)
    recordings = {
        s.name: [decode_chunk(m) for m in read_recording(HERE / f"{s.name}.bin")] for s in SCENARIOS
    }
    at = dt.datetime.now(dt.UTC)
    writer = IndexWriter(engine)
    for offset, chunks in enumerate(recordings.values()):
        writer.write(
            [Received(chunk, 0, offset * 10_000 + i, at) for i, chunk in enumerate(chunks)]
        )
    yield engine, recordings
    engine.dispose()


def _typed_commands(engine: Engine, chunks: list[Chunk]) -> list[str]:
    """The session's commands as ``show`` lists them, less the exec request that
    started the shell (the recorder's, not the operator's)."""
    request = next(e for c in chunks for e in c.events if isinstance(e, Exec))
    with engine.connect() as conn:
        found = search.commands(conn, chunks[0].session_id)
    return [hit.text for hit in found if hit.t != request.t]


def _score(expected: Counter[str], found: Counter[str]) -> tuple[int, int, int]:
    right = sum((expected & found).values())
    return right, sum(found.values()), sum(expected.values())


def test_commands_and_screens_meet_the_goals(
    indexed: tuple[Engine, dict[str, list[Chunk]]],
) -> None:
    engine, recordings = indexed
    right = found_total = expected_total = 0
    screens_found = screens_expected = 0
    report = []
    for scenario in SCENARIOS:
        chunks = recordings[scenario.name]
        commands = _typed_commands(engine, chunks)
        r, f, e = _score(Counter(scenario.commands), Counter(commands))
        right, found_total, expected_total = right + r, found_total + f, expected_total + e
        missing = _screens_missing(engine, scenario, chunks)
        screens_found += len(scenario.screens) - len(missing)
        screens_expected += len(scenario.screens)
        report.append(
            f"{scenario.name}: commands {r}/{e} right of {f} found; screens missing {missing}"
        )
        if list(scenario.commands) != commands:
            report.append(f"  expected {list(scenario.commands)}\n  found    {commands}")
    precision, recall = right / found_total, right / expected_total
    screen_recall = screens_found / screens_expected
    print("\n".join(report))
    print(
        f"commands precision {precision:.3f} recall {recall:.3f}; screen recall {screen_recall:.3f}"
    )
    assert precision >= GOAL_COMMANDS, report
    assert recall >= GOAL_COMMANDS, report
    assert screen_recall >= GOAL_SCREENS, report


def _screens_missing(engine: Engine, scenario: Scenario, chunks: list[Chunk]) -> list[str]:
    """Texts the session displayed that search does not find as displayed (a screen
    row, or an output line where the program drew it with line feeds)."""
    missing = []
    with engine.connect() as conn:
        for text in scenario.screens:
            query = search.Query(text, session_id=chunks[0].session_id)
            if not any(hit.kind in ("screen", "output") for hit in search.search(conn, query)):
                missing.append(text)
    return missing


def test_a_line_shown_once_is_found_once(indexed: tuple[Engine, dict[str, list[Chunk]]]) -> None:
    engine, _ = indexed
    with engine.connect() as conn:
        for line in (
            "VIM-MARKER-7215 in the notes",
            "LESS-MARKER-5093 shown by less",
            "NANO-MARKER-3377 in a file nano opens",
            "pager line 7",
        ):
            hits = search.search(conn, search.Query(line))
            assert [h.text for h in hits if h.text == line] == [line], hits


def test_no_corpus_session_is_flagged_uncertain_prompt(
    indexed: tuple[Engine, dict[str, list[Chunk]]],
) -> None:
    """Ordinary prompts of bash, zsh, dash and fish, with editing, full-screen programs
    and nested shells: none is ``uncertain-prompt`` (docs/recording.md, "Flags")."""
    engine, recordings = indexed
    with engine.connect() as conn:
        listed = conn.execute(select(search.SESSIONS.c.session_id)).scalars().all()
        flagged = flagged_ids(conn)
    assert len(listed) == len(recordings)
    assert flagged == frozenset()
