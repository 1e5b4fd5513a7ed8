"""Session bytes on an auditor's terminal: everything drawn, nothing that answers or lingers."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sshtrail.termfilter import MAX_STRING, TerminalFilter


def filtered(data: bytes, titles: bool = False) -> bytes:
    return TerminalFilter(titles).feed(data)


@pytest.mark.parametrize(
    "hostile",
    [
        b"\x1b[6n",  # cursor position report: the answer would be typed into the shell
        b"\x1b[5n",
        b"\x1b[?6n",
        b"\x1b[c",  # device attributes
        b"\x1b[0c",
        b"\x1b[>c",
        b"\x1b[=c",
        b"\x1b[>q",  # XTVERSION
        b"\x1b[?2004$p",  # DECRQM
        b"\x1b[14t",  # window size report
        b"\x1b[21t",  # title report
        b"\x1b[2t",  # iconify
        b"\x1b[x",  # DECREQTPARM
        b"\x1bZ",  # DECID
        b"\x05",  # ENQ: answerback
        b"\x1bP$qm\x1b\\",  # DECRQSS
        b"\x1bP+q544e\x1b\\",  # XTGETTCAP
        b"\x1bP0|17/72756d\x1b\\",  # DECUDK: programs a function key to type "rm"
        b"\x1b]52;c;cm0gLXJmIH4K\x07",  # OSC 52: clipboard
        b"\x1b]52;c;?\x1b\\",
        b"\x1b]0;pwned\x07",  # titles, unless asked for
        b"\x1b]2;pwned\x1b\\",
        b"\x1b]11;?\x07",  # background colour query
        b"\x1b]4;1;?\x07",
        b"\x1b]1337;File=name=eA==:eA==\x07",  # iTerm2 file transfer
        b"\x1b]7;file:///etc\x07",
        b"\x1b]777;notify;x;y\x07",
        b"\x1b_Gf=100;AAAA\x1b\\",  # APC (kitty graphics)
        b"\x1b^privacy\x1b\\",
        b"\x1bXsos\x1b\\",
        b"\x1b[?1000h",  # mouse reporting
        b"\x1b[?1006h",
        b"\x1b[?1004h",  # focus events
        b"\x1b[?2004h",  # bracketed paste
        b"\x1b[?1h",  # cursor keys mode
        b"\x1b=",  # keypad application mode
        b"\x1b[>4;2m",  # modifyOtherKeys
        b"\x1b[>1u",  # kitty keyboard protocol
        b"\x1b[?u",
        b"\xc2\x9b6n",  # C1 CSI as UTF-8
        b"\xc2\x9d52;c;x\xc2\x9c",
    ],
)
def test_nothing_that_answers_or_changes_input_gets_through(hostile: bytes) -> None:
    shown = filtered(b"before" + hostile + b"after")
    assert shown.startswith(b"before")
    assert shown.endswith(b"after")
    middle = shown[len(b"before") : -len(b"after")]
    assert middle in (b"", b"6n", b"52;c;x")  # a C1 control goes, its text stays as text


@pytest.mark.parametrize(
    "drawing",
    [
        b"\x1b[2J\x1b[H",
        b"\x1b[1;31mred\x1b[0m",
        b"\x1b[38;2;1;2;3mtrue colour",
        b"\x1b[10;20H",
        b"\x1b[?25l",
        b"\x1b[?1049h",
        b"\x1b[3;20r",
        b"\x1b(0lqk\x1b(B",
        b"\x1b]8;;https://example.org\x1b\\link\x1b]8;;\x1b\\",
        b"\x1b[4 q",  # cursor style
        b"\x1bPq#0;2;0;0;0#0~~\x1b\\",  # sixel
        "héllo wörld ✓ 漢字".encode(),
        b"\r\n\t\x08\x07",
    ],
)
def test_what_draws_the_screen_is_kept(drawing: bytes) -> None:
    shown = filtered(drawing)
    # OSC strings are normalised to end with BEL; everything else is byte for byte.
    assert shown.replace(b"\x07", b"\x1b\\") == drawing.replace(b"\x07", b"\x1b\\")


def test_mixed_modes_keep_only_the_drawing_ones() -> None:
    assert filtered(b"\x1b[?1049;1000;25h") == b"\x1b[?1049;25h"
    assert filtered(b"\x1b[?1000;1006h") == b""


def test_titles_only_when_asked_for() -> None:
    assert filtered(b"\x1b]0;build 42\x07", titles=True) == b"\x1b]0;build 42\x07"


def test_lasting_changes_are_undone_at_the_end() -> None:
    screen = TerminalFilter()
    screen.feed(b"\x1b[?1049h\x1b[?25l\x1b[5;10r\x1b(0\x0e\x1b]11;#000000\x07\x1b[4h\x1b[1m")
    undo = screen.finish()
    for needed in (
        b"\x1b[0m",
        b"\x1b[?1049l",
        b"\x1b[?25h",
        b"\x1b[r",
        b"\x1b(B",
        b"\x0f",
        b"\x1b]111\x07",
        b"\x1b[4l",
    ):
        assert needed in undo
    plain = TerminalFilter()
    plain.feed(b"just text\r\n")
    assert plain.finish() == b""  # nothing to undo: nothing added


def test_a_sequence_split_between_outputs_is_judged_whole() -> None:
    screen = TerminalFilter()
    assert screen.feed(b"a\x1b") == b"a"
    assert screen.feed(b"[") == b""
    assert screen.feed(b"6") == b""
    assert screen.feed(b"nb\x1b]52;c;") == b"b"
    assert screen.feed(b"eA==\x1b") == b""
    assert screen.feed(b"\\c\xc2") == b"c"
    assert screen.feed(b"\x9b6n") == b"6n"


def test_an_endless_string_is_dropped_without_being_kept() -> None:
    screen = TerminalFilter()
    assert screen.feed(b"\x1b]52;c;" + b"A" * (MAX_STRING + 10)) == b""
    assert len(screen._sequence) <= MAX_STRING
    assert screen.feed(b"A" * 1000 + b"\x07after") == b"after"


def test_an_abandoned_string_is_not_shown() -> None:
    # ESC followed by anything but a backslash ends the string without running it.
    assert filtered(b"\x1b]0;title\x1b[1mbold") == b"\x1b[1mbold"


@given(st.binary(max_size=400), st.lists(st.integers(0, 400), max_size=6))
def test_nothing_answering_survives_any_input_cut_anywhere(data: bytes, cuts: list[int]) -> None:
    screen = TerminalFilter()
    points = sorted({0, len(data), *[c for c in cuts if c <= len(data)]})
    shown = b"".join(screen.feed(data[a:b]) for a, b in itertools.pairwise(points))
    shown += screen.finish()
    for answer in (b"\x1b[6n", b"\x1b[c", b"\x1b]52", b"\x1bZ", b"\x05", b"\x1b[?1000h"):
        assert answer not in shown
