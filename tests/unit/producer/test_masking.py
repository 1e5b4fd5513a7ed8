"""The no-echo rule: what a person typed is recorded only if the terminal showed it."""

from __future__ import annotations

from producer.masking import MAX_HELD_BYTES, EchoMasker
from sshtrail.events import Event, Input, MaskedInput, Output

MS = 1_000_000
WINDOW = 500 * MS


def typed(events: list[Event]) -> bytes:
    return b"".join(e.data for e in events if isinstance(e, Input))


def masked(events: list[Event]) -> int:
    return sum(e.count for e in events if isinstance(e, MaskedInput))


def test_echoed_keystrokes_are_recorded_in_order() -> None:
    masker = EchoMasker(WINDOW)
    out: list[Event] = []
    t = 0
    for char in b"ls":
        t += 10 * MS
        out += masker.input(t, bytes([char]))
        out += masker.output(t + MS, bytes([char]))
    out += masker.input(t + 20 * MS, b"\r")
    out += masker.output(t + 21 * MS, b"\r\nfile\r\n$ ")
    assert typed(out) == b"ls\r"
    assert masked(out) == 0
    assert [e.t for e in out] == sorted(e.t for e in out)
    assert out[0] == Input(10 * MS, b"l")


def test_a_password_at_a_no_echo_prompt_is_masked() -> None:
    masker = EchoMasker(WINDOW)
    out = masker.output(0, b"[sudo] password for alice: ")
    t = 0
    for char in b"hunter2":
        t += 50 * MS
        out += masker.input(t, bytes([char]))
    out += masker.input(t + 10 * MS, b"\r")
    out += masker.output(t + 11 * MS, b"\r\n")  # the newline, not the password
    out += masker.expire(t + WINDOW + 50 * MS)
    out += masker.output(t + 2 * WINDOW, b"Sorry, try again. hunter2 is wrong\r\n")
    assert b"hunter2" not in typed(out)
    assert masked(out) == 7
    assert typed(out) == b"\r"


def test_silence_masks_after_the_window_not_before() -> None:
    masker = EchoMasker(WINDOW)
    assert masker.input(0, b"x") == []
    assert masker.deadline == WINDOW
    assert masker.expire(WINDOW - 1) == []
    assert masker.expire(WINDOW) == [MaskedInput(0, 1)]
    assert masker.deadline is None


def test_echo_after_cursor_escapes_and_split_over_outputs() -> None:
    masker = EchoMasker(WINDOW)
    out = masker.input(0, b"hello")  # pasted at once
    out += masker.output(1, b"\x1b[?25l\x1b[1;5Hhel")
    out += masker.output(2, b"lo\x1b[?25h")
    assert typed(out) == b"hello"


def test_typed_ahead_lines_count_as_echoed_after_the_line_end() -> None:
    masker = EchoMasker(WINDOW)
    out = masker.input(0, b"ls\n")
    out += masker.input(1, b"pwd\n")
    out += masker.output(2, b"ls\r\npwd\r\n")
    assert typed(out) == b"ls\npwd\n"


def test_output_that_is_not_the_echo_masks_at_once() -> None:
    masker = EchoMasker(WINDOW)
    out = masker.input(0, b"p")
    out += masker.output(1, b"unrelated")
    assert out == [MaskedInput(0, 1), Output(1, b"unrelated")]


def test_control_keys_are_recorded_even_without_echo() -> None:
    masker = EchoMasker(WINDOW)
    out = masker.input(0, b"\x03\x1b[A\x7f\t")
    assert typed(out) == b"\x03\x1b[A\x7f\t"


def test_held_output_is_bounded() -> None:
    masker = EchoMasker(WINDOW)
    masker.input(0, b"q")
    released = masker.output(1, b"x" * (MAX_HELD_BYTES + 1))
    assert released[0] == MaskedInput(0, 1)


def test_flush_masks_what_is_still_undecided() -> None:
    masker = EchoMasker(WINDOW)
    masker.input(0, b"secret")
    assert masker.flush() == [MaskedInput(0, 6)]


def test_a_line_typed_ahead_and_wider_than_the_terminal_is_recorded_as_typed() -> None:
    """bash redraws a line at the terminal's edge: the character that wraps, a carriage
    return, that character again (as a full run recorded it, on 80 columns)."""
    line = b"rm /tmp/v5cd74bf0-" + b"long-path-component-" * 5
    masker = EchoMasker(WINDOW)
    out = masker.output(0, b"READY> ")
    out += masker.input(10 * MS, line + b"\n")
    wrap = len(b"READY> ") + 74  # the first row holds 73 typed bytes and the 74th
    shown = line[:74] + b"\r" + line[73:]
    assert shown[wrap - 7 - 1 : wrap - 7 + 2] == b"n\rn"
    out += masker.output(30 * MS, shown)
    out += masker.output(70 * MS, b"\r\n\x1b[?2004l\r")
    out += masker.flush()
    assert typed(out) == line + b"\n"
    assert masked(out) == 0


def test_a_line_ending_at_the_edge_is_echoed_with_a_space_and_a_carriage_return() -> None:
    masker = EchoMasker(WINDOW)
    out = masker.input(0, b"abc")
    out += masker.output(MS, b"ab \rc")  # "b" in the last column: wrapped by " \r"
    out += masker.flush()
    assert typed(out) == b"abc"


def test_a_password_is_still_masked_when_output_resembles_a_wrapped_echo() -> None:
    masker = EchoMasker(WINDOW)
    out = masker.output(0, b"Password: ")
    out += masker.input(10 * MS, b"hunter2")
    out += masker.output(20 * MS, b"h\rhx")  # starts like the echo, then is not
    out += masker.flush()
    assert b"hunter2" not in typed(out)
    assert masked(out) == 7


def test_a_password_typed_at_a_persons_pace_keeps_no_key_the_next_prompt_starts_with() -> None:
    """Keys 60 ms apart, the first ones masked as their window passes, Enter right after
    the last: the prompt that follows begins with ``r``, a key still waiting for its
    echo. The keys before it were not echoed, so neither was it (an attack recorded the
    ``r`` of ``hunter2`` in clear this way: issue 41, case 16)."""
    window = 300 * MS
    masker = EchoMasker(window)
    out = masker.output(0, b"ready> ")
    t = 0
    for char in b"hunter2":
        t += 60 * MS
        out += masker.input(t, bytes([char]))
        out += masker.expire(t)
    out += masker.input(t + 5 * MS, b"\r")
    out += masker.output(t + 8 * MS, b"\r\nready> ")
    out += masker.expire(t + 2 * window)
    assert typed(out) == b"\r"
    assert masked(out) == 7
