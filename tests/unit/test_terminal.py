"""From terminal bytes to what a person saw: lines and commands."""

from __future__ import annotations

import pyte
from hypothesis import given, settings
from hypothesis import strategies as st

from sshtrail.plaintext import prepared
from sshtrail.terminal import MAX_LINE, MAX_OVERWRITTEN, OVERLAP, Found, Terminal

PROMPT = b"deploy@web01:~$ "


def typed(terminal: Terminal, keys: bytes, echo: bytes | None = None, t: int = 1) -> None:
    terminal.input(keys, t)
    terminal.output(keys if echo is None else echo, t)


def texts(terminal: Terminal, kind: str) -> list[str]:
    terminal.flush()
    return [f.text for f in terminal.found if f.kind == kind]


def test_backspace_corrections_give_the_command_as_run() -> None:
    term = Terminal(80, 24, pty=True)
    term.output(PROMPT, 0)
    typed(term, b"ehco")
    typed(term, b"\x7f\x7f\x7f", b"\x08\x1b[K\x08\x1b[K\x08\x1b[K")
    typed(term, b"cho hi")
    term.input(b"\r", 7)
    term.output(b"\r\nhi\r\n" + PROMPT, 8)
    term.flush()
    assert term.found == [Found("command", "echo hi", 7), Found("output", "hi", 8)]


def test_history_recall_and_tab_completion_are_read_off_the_screen() -> None:
    term = Terminal(80, 24, pty=True)
    term.output(PROMPT, 0)
    term.input(b"\x1b[A", 1)  # up arrow: the shell draws the recalled command
    term.output(b"cat /etc/hostname", 1)
    term.input(b"\r", 2)
    term.output(b"\r\nweb01\r\n" + PROMPT, 3)
    typed(term, b"ls /va", t=4)
    term.input(b"\t", 5)  # completion: the shell adds what the key stands for
    term.output(b"r/", 5)
    term.input(b"log\r", 6)
    term.output(b"log\r\nsyslog\r\n" + PROMPT, 7)
    assert texts(term, "command") == ["cat /etc/hostname", "ls /var/log"]
    assert texts(term, "output") == ["web01", "syslog"]


def test_typing_ahead_of_the_echo_still_gives_the_command() -> None:
    term = Terminal(80, 24, pty=True)
    term.output(PROMPT, 0)
    term.input(b"uptime\r", 1)  # one write: the echo comes after the Enter
    term.output(b"uptime\r\n 10:00 up 3 days\r\n" + PROMPT, 2)
    term.flush()
    assert term.found == [Found("command", "uptime", 1), Found("output", " 10:00 up 3 days", 2)]


def test_input_the_terminal_did_not_echo_never_becomes_text() -> None:
    term = Terminal(80, 24, pty=True)
    term.output(b"[sudo] password for deploy: ", 0)
    term.input(b"hunter2\r", 1)  # not echoed (the recorder masks it, too)
    term.output(b"\r\n", 2)
    assert texts(term, "command") == []
    assert texts(term, "output") == ["[sudo] password for deploy:"]


def test_carriage_returns_and_escapes_leave_the_final_line() -> None:
    term = Terminal(80, 24, pty=True)
    term.output(b"progress 10%\rprogress 55%\rprogress 100%\r\n", 0)
    term.output(b"\x1b[1;31mERROR\x1b[0m: disk \x1b[4mfull\x1b[0m\r\n", 1)
    # What the carriage returns wrote over is searchable too (issue 23), before the
    # line as it stayed.
    assert texts(term, "output") == [
        "progress 10%",
        "progress 55%",
        "progress 100%",
        "ERROR: disk full",
    ]


def test_a_wrapped_line_is_one_line() -> None:
    term = Terminal(20, 5, pty=True)
    term.output(b"0123456789" * 5 + b"\r\n", 0)
    assert texts(term, "output") == ["0123456789" * 5]


def test_without_a_pty_bare_newlines_end_lines_and_nothing_wraps() -> None:
    term = Terminal(0, 0, pty=False)
    term.output(b"first\nsecond " + b"x" * 300 + b"\nthird", 0)
    term.finish(1)
    assert texts(term, "output") == ["first", "second " + "x" * 300, "third"]


def test_a_resize_keeps_working() -> None:
    term = Terminal(80, 24, pty=True)
    term.resize(30, 10)
    term.output(b"a" * 40 + b"\r\n", 0)
    assert texts(term, "output") == ["a" * 40]


# -- bounded and linear: what an operator can send on purpose (issue 23) ---------


def test_a_giant_terminal_is_emulated_at_the_largest_size_allowed() -> None:
    term = Terminal(4_294_967_295, 4_294_967_295, pty=True)  # would exhaust memory in pyte
    term.output(b"still works\r\n", 1)
    assert texts(term, "output") == ["still works"]
    term.resize(10_000, 10_000)
    term.output(b"and after a resize\r\n", 2)
    assert texts(term, "output")[-1] == "and after a resize"


def test_a_long_line_is_indexed_whole_in_overlapping_pieces() -> None:
    line = "".join(f"{n:07d}," for n in range(2500))  # 20,000 characters, no two alike
    term = Terminal(80, 24, pty=True)
    term.output(line.encode() + b"\r\n", 1)
    pieces = texts(term, "output")
    assert all(len(piece) <= MAX_LINE for piece in pieces)
    joined = pieces[0] + "".join(piece[OVERLAP:] for piece in pieces[1:])
    assert joined == line
    # Anything up to OVERLAP characters long is inside one piece, wherever it is.
    for start in range(0, len(line) - OVERLAP, 997):
        needle = line[start : start + OVERLAP]
        assert any(needle in piece for piece in pieces)


def test_a_line_with_no_end_is_never_held_whole() -> None:
    term = Terminal(80, 24, pty=True)
    for n in range(50):  # 3.2 MB, no line end, as one operator's `cat` of a blob
        term.output(bytes([65 + n % 26]) * 65536, n)
        term.flush()
        assert len(term._line.text) <= MAX_LINE + OVERLAP
    term.finish(99)
    pieces = [f.text for f in term.found]
    assert sum(len(p) - OVERLAP for p in pieces) + OVERLAP >= 50 * 65536 - 80


def test_bulk_lines_taken_the_cheap_way_are_the_lines_the_screen_showed() -> None:
    lines = [f"line {n}\twith a tab and text {'x' * (n % 90)}" for n in range(3000)]
    data = ("\r\n".join(lines) + "\r\n").encode()
    cheap, slow = Terminal(80, 24, pty=True), Terminal(80, 24, pty=True)
    cheap.output(b"$ cat f\r\n" + data + b"$ ", 1)
    for n in range(0, len(data), 100):  # small pieces: never the bulk path
        slow.output(data[n : n + 100], 1)
        slow.flush()
    assert texts(cheap, "output")[1:] == texts(slow, "output")

    # The screen ends the same: the lines that stayed on it went through the emulator.
    def on_screen(term: Terminal) -> list[str]:
        return [row.rstrip() for row in term._screen.display if row.startswith("line")]

    assert on_screen(cheap)[-20:] == on_screen(slow)[-20:]


def test_text_overwritten_by_a_carriage_return_is_indexed_too() -> None:
    term = Terminal(80, 24, pty=True)
    term.output(b"echo-free secret: hunter2\rall good, nothing here      \r\n", 1)
    assert texts(term, "output") == [
        "echo-free secret: hunter2",
        "all good, nothing here",
    ]
    progress = Terminal(80, 24, pty=True)
    progress.output(b"".join(b"\r%d%%" % n for n in range(0, 101, 10)) + b"\r\n", 1)
    found = texts(progress, "output")
    assert found[-1] == "100%"
    assert len(found) <= 1 + MAX_OVERWRITTEN  # a progress bar is not a thousand lines


def test_zeros_and_clear_floods_never_reach_the_emulator() -> None:
    zeros, clears = b"\x00" * 20_000_000, b"\x1b[2J\x1b[H" * 200_000
    assert prepared(zeros) == b""  # a terminal ignores NUL
    assert prepared(clears) == b"\x1b[2J\x1b[H"  # one clear shows what a million do
    term = Terminal(1000, 500, pty=True)
    term.output(zeros, 1)
    term.output(clears, 2)
    term.output(b"visible afterwards\r\n", 3)
    assert texts(term, "output") == ["visible afterwards"]


#: Pieces of terminal output: text, line ends, and the sequences whose handling the
#: index's screen does its own way (scrolling, margins, wrap and insert modes,
#: character sets, attributes) or leaves to pyte.
PIECES = [
    b"abc",
    b"0123456789",
    b"x" * 25,
    b"\r",
    b"\n",
    b"\r\n",
    b"\x08",
    b"\t",
    b"\x1b[2J",
    b"\x1b[H",
    b"\x1b[3;5H",
    b"\x1b[K",
    b"\x1bM",
    b"\x1bD",
    b"\x1b[2;4r",
    b"\x1b[r",
    b"\x1b[?7l",
    b"\x1b[?7h",
    b"\x1b[4h",
    b"\x1b[4l",
    b"\x1b[31m",
    b"\x1b[1;44m",
    b"\x1b[0m",
    b"\x1b(0",
    b"\x1b(B",
    b"\x1b[L",
    b"\x1b[M",
    b"\x1b[?5h",
    b"\x1b[?5l",
    "é中".encode(),
]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(PIECES), max_size=60), st.sampled_from([(12, 5), (7, 3)]))
def test_the_screen_read_for_the_index_is_the_screen_pyte_draws(
    pieces: list[bytes], size: tuple[int, int]
) -> None:
    """The index draws plain text a row at a time, scrolls by moving an offset and
    skips what changes nothing: the screen must come out as pyte's own, cell for cell."""
    columns, rows = size
    term = Terminal(columns, rows, pty=True)
    reference = pyte.Screen(columns, rows)
    stream = pyte.ByteStream(reference)
    for piece in pieces:
        term.output(piece, 1)
        term.flush()
        stream.feed(piece)
    ours = term._screen
    assert (ours.cursor.x, ours.cursor.y) == (reference.cursor.x, reference.cursor.y)
    assert _display(ours) == _display(reference)
    for y in range(rows):
        assert [ours.buffer[y][x] for x in range(columns)] == [
            reference.buffer[y][x] for x in range(columns)
        ], f"row {y}"


def _display(screen: pyte.Screen) -> list[str] | str:
    """pyte's ``display``, or the error it raises (a wide character in the last column
    with autowrap off makes pyte's own rendering fail)."""
    try:
        return screen.display
    except IndexError as exc:
        return repr(exc)


def test_without_a_pty_input_lines_are_the_commands() -> None:
    shell = Terminal(0, 0, pty=False, input_kind="command")
    shell.input(b"id\nuname -a\nrm -rf /tmp/x", 1)
    shell.output(b"uid=0(root)\n", 2)
    shell.finish(3)
    assert [f.text for f in shell.found if f.kind == "command"] == [
        "id",
        "uname -a",
        "rm -rf /tmp/x",
    ]
    data = Terminal(0, 0, pty=False, input_kind="input")
    data.input(b"some text\n\x00\x01\x02binary\nmore text\n", 1)
    data.finish(2)
    assert [f.text for f in data.found if f.kind == "input"] == ["some text", "more text"]


# -- full-screen programs, cleared screens, and prompts told apart ----------------------

S = 1_000_000_000


def at(row: int, text: str) -> bytes:
    return f"\x1b[{row};1H{text}\x1b[K".encode()


def test_sequences_the_emulator_cannot_apply_do_not_stop_the_reading() -> None:
    term = Terminal(80, 24, pty=True)
    term.output(b"\x1b[?4m\x1b[1;2;3;4A\x1b[>4;2m\x1b[?1;2;3;4;5;6;7;8;9;10Jbefore\r\n", 0)
    term.output(b"after\r\n", 1)
    assert texts(term, "output") == ["before", "after"]


def test_a_full_screen_program_is_read_as_screens_and_its_keys_are_no_commands() -> None:
    term = Terminal(80, 24, pty=True)
    term.output(PROMPT, 0)
    typed(term, b"vim notes.txt", t=1)
    term.input(b"\r", 2)
    term.output(
        b"\r\n\x1b[?1049h\x1b[H\x1b[2J"
        + at(1, "line one")
        + at(2, "MARKER-1")
        + at(24, '"notes.txt" 2L'),
        2,
    )
    term.input(b":", 4 * S)  # a key after the screen stayed: it was seen
    term.output(at(24, ":"), 4 * S)
    typed(term, b"wq", t=4 * S + 1)
    term.input(b"\r", 4 * S + 2)
    term.output(at(24, '"notes.txt" 2L written') + b"\x1b[?1049l\r" + PROMPT, 4 * S + 3)
    typed(term, b"echo after", t=5 * S)
    term.input(b"\r", 5 * S + 1)
    term.output(b"\r\nafter\r\n" + PROMPT, 5 * S + 2)
    term.finish(6 * S)
    assert texts(term, "command") == ["vim notes.txt", "echo after"]
    screens = texts(term, "screen")
    assert screens.count("MARKER-1") == 1
    assert '"notes.txt" 2L' in screens
    assert '"notes.txt" 2L written' in screens
    assert texts(term, "output") == ["after", PROMPT.decode().strip()]
    marker = next(f for f in term.found if f.text == "MARKER-1")
    assert marker.t == 2  # when it was drawn: a replay opened there shows it


def test_a_pager_scrolling_line_by_line_is_read_once_per_line() -> None:
    term = Terminal(80, 24, pty=True)
    page = b"".join(b"pager line %d\r\n" % n for n in range(1, 24))
    term.output(b"\x1b[?1049h\x1b[H\x1b[2J" + page + b":", 0)
    for n in range(24, 60):  # each Enter scrolls one line in, fast: no quiet reading
        term.input(b"\r", n * 1000)
        term.output(b"\r\x1b[K" + b"pager line %d\r\n:" % n, n * 1000 + 1)
    term.output(b"\x1b[?1049l", 61 * 1000)
    term.finish(62 * 1000)
    lines = [t for t in texts(term, "screen") if t.startswith("pager line")]
    assert lines == [f"pager line {n}" for n in range(1, 60)]
    assert texts(term, "command") == []


def test_a_quiet_screen_is_read_and_what_stays_is_not_read_again() -> None:
    term = Terminal(80, 24, pty=True)
    term.output(b"\x1b[?1049h" + at(1, "top - load 0.10") + at(3, "1 root sshd"), 0)
    term.output(at(1, "top - load 0.20"), 3 * S)  # the first screen stayed 3 s
    term.output(at(1, "top - load 0.30"), 3 * S + 1000)  # replaced at once: never seen
    term.finish(4 * S)
    assert texts(term, "screen") == ["top - load 0.10", "1 root sshd", "top - load 0.30"]


def test_a_cleared_main_screen_gives_what_no_line_feed_took() -> None:
    term = Terminal(80, 24, pty=True)
    term.output(b"listed line\r\n" + at(10, "drawn in place"), 0)
    term.output(b"\x1b[H\x1b[2J", 1)
    term.output(b"\x1b[H\x1b[2J", 2)  # nothing drawn since: nothing to read
    term.finish(3)
    assert texts(term, "output") == ["listed line"]
    assert texts(term, "screen") == ["drawn in place"]


def test_a_completion_list_keeps_the_prompt_of_the_line_being_typed() -> None:
    term = Terminal(80, 24, pty=True)
    term.output(PROMPT, 0)
    typed(term, b"ls /et", t=1)
    term.input(b"\t\t", 2)
    term.output(b"\r\netc/   etc2/\r\n" + PROMPT + b"ls /etc", 3)
    typed(term, b"/passwd", t=4)
    term.input(b"\r", 5)
    term.output(b"\r\n/etc/passwd\r\n" + PROMPT, 6)
    term.flush()
    assert texts(term, "command") == ["ls /etc/passwd"]
    assert all(f.certain for f in term.found)


def test_keys_typed_ahead_give_the_command_after_a_prompt_seen_before_marked_uncertain() -> None:
    term = Terminal(80, 24, pty=True)
    term.output(PROMPT, 0)
    typed(term, b"sleep 2", t=1)
    term.input(b"\r", 2)
    term.output(b"\r\n", 3)
    term.input(b"ls\r", 4)  # typed while sleep runs: the tty echoes it at once
    term.output(b"ls\r\n", 4)
    term.output(PROMPT + b"ls", 5)  # the shell then reads it and draws it again
    term.output(b"\r\nfile\r\n" + PROMPT, 6)
    term.flush()
    commands = [(f.text, f.certain) for f in term.found if f.kind == "command"]
    assert commands == [("sleep 2", True), ("ls", False)]


# -- ways to hide what was run (issue 41) ----------------------------------------------


def test_a_shell_on_the_alternate_screen_still_has_its_commands_read() -> None:
    """``tput smcup`` and the shell goes on there: its prompt, seen before, tells a
    shell -- not a full-screen program -- owns the screen."""
    term = Terminal(80, 24, pty=True)
    term.output(PROMPT, 0)
    typed(term, b"tput smcup")
    term.input(b"\r", 2)
    term.output(b"\r\n\x1b[?1049h\x1b[H\x1b[2J" + PROMPT, 3)
    typed(term, b"touch /tmp/marker-1", t=4)
    term.input(b"\r", 5)
    term.output(b"\r\n" + PROMPT, 6)
    assert texts(term, "command") == ["tput smcup", "touch /tmp/marker-1"]


def test_a_prompt_that_deletes_the_lines_above_it_cannot_erase_them_unread() -> None:
    """``CSI M`` (delete lines) drops rows without a line feed or an erase: what they
    showed is indexed before they go, and the line typed at the Enter is kept as
    ``input`` when a trap moves the cursor away before the shell's line feed."""
    term = Terminal(80, 24, pty=True)
    term.output(PROMPT, 0)
    typed(term, b"rm -rf /tmp/marker-2")
    term.input(b"\r", 2)
    term.output(b"\x1b[H\x1b[99M\r\n$ ", 3)  # a DEBUG trap's "home, delete 99 lines"
    term.output(b"\x1b[5;1Hdrawn-in-place\x1b[H\x1b[99M$ ", 4)
    term.finish(5)
    assert "rm -rf /tmp/marker-2" in texts(term, "input")
    screens = texts(term, "screen")
    assert "deploy@web01:~$ rm -rf /tmp/marker-2" in screens
    assert "drawn-in-place" in screens


def test_a_backslash_continued_line_is_one_command() -> None:
    term = Terminal(80, 24, pty=True)
    term.output(PROMPT, 0)
    typed(term, b"tou\\")
    term.input(b"\r", 2)
    term.output(b"\r\n> ", 3)
    typed(term, b"ch /tmp/x", t=4)
    term.input(b"\r", 5)
    term.output(b"\r\n" + PROMPT, 6)
    typed(term, b"echo a\\\\", t=7)  # an escaped backslash ends the line
    term.input(b"\r", 8)
    term.output(b"\r\na\\\r\n" + PROMPT, 9)
    assert texts(term, "command") == ["touch /tmp/x", "echo a\\\\"]
    assert texts(term, "input") == []  # each line read whole at its line feed


def test_a_full_screen_program_is_not_taken_for_a_shell() -> None:
    term = Terminal(80, 24, pty=True)
    term.output(PROMPT, 0)
    typed(term, b"vim notes")
    term.input(b"\r", 2)
    term.output(b"\r\n\x1b[?1049h\x1b[H\x1b[2J~\r\n~\r\n\x1b[24;1H", 3)
    term.input(b"ihello\x1b:wq\r", 4)
    term.output(b"\x1b[1;1Hhello\x1b[24;1H:wq", 5)
    term.output(b"\x1b[?1049l\r\n" + PROMPT, 6)
    term.finish(7)
    assert texts(term, "command") == ["vim notes"]
    assert texts(term, "input") == []


def test_a_shell_on_the_alternate_screen_is_known_when_its_prompt_was_typed_ahead_of() -> None:
    """Keys typed before the prompt was drawn: the prompt is not the one seen at the
    first key, but a line that starts like a prompt still teaches it."""
    term = Terminal(80, 24, pty=True)
    term.input(b"tput smcup\r", 1)  # typed ahead
    term.output(b"ready-prompt> tput smcup\r\n\x1b[?1049hready-prompt> ", 2)
    term.input(b"touch /tmp/marker-3\r", 3)
    term.output(b"touch /tmp/marker-3\r\n\x1b[H\x1b[99M$ ", 4)
    assert texts(term, "command") == ["tput smcup", "touch /tmp/marker-3"]


def test_a_line_that_leaves_a_quote_open_is_one_command_with_the_next() -> None:
    term = Terminal(80, 24, pty=True)
    term.output(PROMPT, 0)
    typed(term, b"echo 'x")
    term.input(b"\r", 2)
    term.output(b"\r\n> ", 3)
    typed(term, b"'; setenforce 0", t=4)
    term.input(b"\r", 5)
    term.output(b"\r\nx\r\n\r\n" + PROMPT, 6)
    assert texts(term, "command") == ["echo 'x\n'; setenforce 0"]


def test_a_line_typed_blind_is_no_command_and_what_it_ran_printed_is_output() -> None:
    """``read -s c; eval "$c"``: the keys typed blind were masked, so only their Enter
    reaches the reader (``blind``, told by the masked-input tracker). The line its line
    feed ends is what the command printed, not a command line (issue 41)."""
    term = Terminal(80, 24, pty=True)
    term.output(PROMPT, 0)
    typed(term, b'read -s c; eval "$c"')
    term.input(b"\r", 2)
    term.output(b"\r\n", 2)
    term.input(b"\r", 3, blind=True)
    term.output(b"marker-42\r\n" + PROMPT, 4)
    assert texts(term, "command") == ['read -s c; eval "$c"']
    assert texts(term, "output") == ["marker-42"]
