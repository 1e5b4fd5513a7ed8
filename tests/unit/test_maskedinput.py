"""Telling a password prompt from an operator typing blind."""

from __future__ import annotations

from sshtrail import events as ev
from sshtrail.maskedinput import MaskedInputTracker


def fed(*events: ev.Event) -> MaskedInputTracker:
    tracker = MaskedInputTracker()
    for event in events:
        tracker.feed(event)
    return tracker


def test_a_password_is_masked_and_nothing_more() -> None:
    tracker = fed(
        ev.Input(1, b"sudo -v"), ev.Input(2, b"\r"), ev.MaskedInput(3, 12), ev.Input(4, b"\r")
    )
    assert (tracker.verdict, tracker.masked_bytes, tracker.masked_lines) == ("masked", 12, 1)


def test_echo_turned_off_by_the_operator_is_suspicious() -> None:
    typed = [ev.Input(n, bytes([c])) for n, c in enumerate(b"stty -echo")]
    tracker = fed(*typed, ev.Input(20, b"\r"))
    assert tracker.verdict == "suspicious"
    assert fed(ev.Input(1, b"stty raw -echo\r")).verdict == "suspicious"
    assert fed(ev.Input(1, b"stty echo\r")).verdict is None
    assert fed(ev.Input(1, b"sttyx -echo\r")).verdict is None


def test_several_lines_or_a_long_line_typed_blind_are_suspicious() -> None:
    three = fed(
        *(e for n in range(3) for e in (ev.MaskedInput(n * 2, 5), ev.Input(n * 2 + 1, b"\r")))
    )
    assert (three.verdict, three.masked_lines) == ("suspicious", 3)
    long = fed(ev.SealedInput(1, 80, b"x" * 120), ev.Input(2, b"\r"))
    assert long.verdict == "suspicious"


def test_line_editing_is_followed() -> None:
    tracker = fed(
        ev.Input(1, b"stty -ech"), ev.Input(2, b"\x7f"), ev.Input(3, b"\x15"), ev.Input(4, b"ls\r")
    )
    assert tracker.verdict is None
