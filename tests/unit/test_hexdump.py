"""A forwarded connection's bytes as hex lines and pages (sshtrail/hexdump.py)."""

from __future__ import annotations

from sshtrail import events as ev
from sshtrail.hexdump import BACK, TOWARDS, lines, page


def test_lines_keep_each_direction_its_own_offsets_and_never_mix_events() -> None:
    shown = list(
        lines(
            [
                ev.Input(t=1, data=b"GET / HTTP/1.0\r\n\r\n"),
                ev.Output(t=2, data=b"\x00\xffok"),
                ev.Output(t=3, data=b"err", stderr=True),
                ev.Input(t=4, data=b"!"),
            ]
        )
    )
    assert [(x.t, x.direction, x.offset, x.hex, x.text) for x in shown] == [
        (1, TOWARDS, 0, "47 45 54 20 2f 20 48 54 54 50 2f 31 2e 30 0d 0a", "GET / HTTP/1.0.."),
        (1, TOWARDS, 16, "0d 0a", ".."),
        (2, BACK, 0, "00 ff 6f 6b", "..ok"),
        (4, TOWARDS, 18, "21", "!"),
    ]


def test_pages_split_both_directions_by_bytes_and_say_whether_more_follow() -> None:
    stream: list[ev.Event] = [ev.Input(t=1, data=bytes(40)), ev.Output(t=2, data=bytes(40))]
    first = page(stream, 1, size=32)
    assert [(x.direction, x.offset) for x in first.lines] == [(TOWARDS, 0), (TOWARDS, 16)]
    assert first.more
    second = page(stream, 2, size=32)
    # a page holds the lines that start on it: 8 + 16 + 16 bytes from byte 32 on
    assert [(x.direction, x.offset) for x in second.lines] == [
        (TOWARDS, 32),
        (BACK, 0),
        (BACK, 16),
    ]
    assert second.more
    third = page(stream, 3, size=32)
    assert [(x.direction, x.offset) for x in third.lines] == [(BACK, 32)]
    assert not third.more
    assert page(stream, 4, size=32).lines == []
