"""Stored text printed to an auditor's terminal cannot drive that terminal."""

from __future__ import annotations

import unicodedata

from hypothesis import given
from hypothesis import strategies as st

from sshtrail.textsafe import visible


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
