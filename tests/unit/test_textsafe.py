"""Stored text printed to an auditor's terminal cannot drive that terminal."""

from __future__ import annotations

import unicodedata
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from sshtrail import describe
from sshtrail.textsafe import visible
from tests.support.escapes import read_back


def test_escape_sequences_and_controls_are_shown_not_obeyed() -> None:
    assert visible("ls\x1b[2J\x1b]0;owned\x07") == "ls\\e[2J\\e]0;owned\\x07"
    assert visible("a\tb\r\nc\x00\x7f\x9b") == "a\\tb\\r\\nc\\x00\\x7f\\x9b"
    assert visible("evil\u202etxt.exe") == "evil\\u202etxt.exe"  # right-to-left override
    assert visible("plain text, ünïcode, 日本") == "plain text, ünïcode, 日本"
    assert visible("back\\slash") == "back\\\\slash"  # an escape cannot be forged


@given(st.text())
def test_nothing_printed_can_start_a_control_sequence(text: str) -> None:
    shown = visible(text)
    assert not any(unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp") for ch in shown)


#: Every C0 control, DEL, every C1 control, the characters printers and templates treat
#: specially (``\``, ``%``, ``{}``), and format characters in and beyond the BMP.
EVERY_KIND = (
    "".join(chr(c) for c in range(0x20))
    + "\x7f"
    + "".join(chr(c) for c in range(0x80, 0xA0))
    + "\\ \\\\ \\e \\x1b %s %% {} {0} {{}} "
    + "\u200b\u202e\u2066\ufeff\U000e0001\U0001d173 \u2028\u2029"
)


def test_every_control_reads_back_exactly_and_none_is_left_raw() -> None:
    shown = visible(EVERY_KIND)
    assert not any(unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp") for ch in shown)
    assert read_back(shown) == EVERY_KIND
    typed = "printf '\\033]0;title\\a' \\\\ \tdone"
    assert visible(typed) == "printf '\\\\033]0;title\\\\a' \\\\\\\\ \\tdone"
    assert read_back(visible(typed)) == typed


def test_escaping_twice_is_caught_by_the_reading_back() -> None:
    typed = "printf '\\033'"
    assert read_back(visible(visible(typed))) != typed  # what show printed before


def test_format_characters_beyond_the_bmp_are_not_ambiguous() -> None:
    assert visible("\U000e0001") == "\\U000e0001"  # once "\\ue0001": \ue000 then "1"
    assert read_back(visible("\U000e00011")) == "\U000e00011"


@given(st.text())
def test_what_is_shown_reads_back_as_what_was_recorded(text: str) -> None:
    assert read_back(visible(text)) == text


def test_the_presenters_return_the_recorded_text_for_the_printer_to_escape_once() -> None:
    row: dict[str, Any] = {"request": "exec", "command": "printf '\\033'\t\x1b"}
    row.update(exit_status=None, exit_signal="\x1b[2J")
    assert describe.request_text(row, 255) == "exec: printf '\\033'\t\x1b"
    assert read_back(visible(describe.request_text(row, 255))) == "exec: " + row["command"]
    assert describe.exit_text(row) == "sig \x1b[2J"
