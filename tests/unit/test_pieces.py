"""A recording cut in pieces by time, and the screen at a piece's start said as bytes."""

from __future__ import annotations

import pytest

from sshtrail import events as ev
from sshtrail.pieces import PIECE_BYTES, PIECE_SECONDS, cut
from sshtrail.screenstate import ScreenState

MS = 1_000_000


def test_pieces_are_cut_by_size_and_by_time_at_whole_chunks() -> None:
    # Ten chunks of a third of a piece, 1 ms apart: a new piece every three.
    found = cut((seq, seq * MS, seq * MS, PIECE_BYTES // 3 + 1) for seq in range(10))
    assert [(p.first_seq, p.last_seq, p.start_ms) for p in found.pieces] == [
        (0, 2, 0),
        (3, 5, 3),
        (6, 8, 6),
        (9, 9, 9),
    ]
    assert found.duration_ms == 10  # the last piece's start and a millisecond
    # Small chunks a second apart: a new piece every PIECE_SECONDS.
    slow = cut((seq, seq * 1000 * MS, seq * 1000 * MS, 10) for seq in range(150))
    assert [p.start_ms for p in slow.pieces] == [0, PIECE_SECONDS * 1000, PIECE_SECONDS * 2000]


def test_a_piece_begins_only_past_the_millisecond_the_one_before_ends() -> None:
    """The player needs every event of a piece before the next one's start."""
    found = cut((seq, 5 * MS, 5 * MS + 10, PIECE_BYTES) for seq in range(4))
    assert len(found.pieces) == 1


def test_the_idle_limit_cuts_pauses_between_chunks() -> None:
    chunks = [(0, 0, 0, 10), (1, 1000 * MS, 1000 * MS, 10), (2, 61_000 * MS, 61_500 * MS, 10)]
    found = cut(iter(chunks), idle_ms=2000)
    assert found.shifts == {0: 0, 1: 0, 2: 58_000}
    assert found.duration_ms == 3500
    assert found.played_ms(61_200) == 3200
    assert found.played_ms(500) == 500
    assert cut(iter(chunks)).duration_ms == 61_500


@pytest.mark.parametrize(
    "output",
    [
        b"plain\r\nlines\r\n$ ",
        b"\x1b[1;31mred bold\x1b[0m \x1b[7mreverse\x1b[0m \x1b[38;5;200mx\x1b[48;2;1;2;3my",
        "wide \u4e2d\u6587 and \u00e9\r\n".encode() * 40,
        b"\x1b[2J\x1b[10;20Hplaced\x1b[?25l",
    ],
)
def test_a_screens_paint_draws_the_same_screen_on_a_fresh_terminal(output: bytes) -> None:
    state = ScreenState(80, 24)
    state.feed(ev.Output(0, output))
    again = ScreenState(80, 24)
    again.feed(ev.Output(0, state.paint().encode()))
    assert again.screen.display == state.screen.display
    assert (again.screen.cursor.x, again.screen.cursor.y) == (
        state.screen.cursor.x,
        state.screen.cursor.y,
    )
    assert again.screen.cursor.hidden == state.screen.cursor.hidden
    for y in range(24):
        for x in range(80):
            mine, theirs = state.screen.buffer[y][x], again.screen.buffer[y][x]
            assert (mine.fg, mine.bg, mine.bold, mine.reverse) == (
                theirs.fg,
                theirs.bg,
                theirs.bold,
                theirs.reverse,
            ), (y, x)


def test_a_resize_is_bounded() -> None:
    state = ScreenState()
    state.feed(ev.Resize(0, 100_000, 100_000))
    assert state.size == (1000, 500)
