"""Exports of a recording: the asciicast the web player loads, with markers and input."""

from __future__ import annotations

import json

import msgspec

from sshtrail import events as ev
from sshtrail.exports import asciicast
from tests.unit.test_wire import start_event

#: A Start of 100x30 (the header's size comes from it).
START = msgspec.structs.replace(start_event(), target="t1", term="xterm", cols=100, rows=30)


def lines(*events: ev.Event, **options: object) -> list[object]:
    return [json.loads(line) for line in asciicast(list(events), **options)]  # type: ignore[arg-type]


def test_commands_become_markers_in_time_order_with_the_output() -> None:
    cast = lines(
        START,
        ev.Output(t=1_000_000_000, data=b"$ "),
        ev.Output(t=3_000_000_000, data=b"done\r\n"),
        ev.End(t=4_000_000_000, reason="closed", bytes_in=0, bytes_out=8, chunks=2, key=b"k" * 32),
        markers=[(0.5, "$ ls"), (2.0, "$ make")],
    )
    assert cast[0] == {
        "version": 2,
        "width": 100,
        "height": 30,
        "timestamp": 1_700_000_000,
        "env": {"TERM": "xterm"},
        "title": "alice@t1",
    }
    assert cast[1:] == [
        [0.5, "m", "$ ls"],
        [1.0, "o", "$ "],
        [2.0, "m", "$ make"],
        [3.0, "o", "done\r\n"],
    ]


def test_input_only_when_asked_and_masked_input_says_only_how_much() -> None:
    recorded = (
        START,
        ev.Input(t=1_000_000_000, data=b"ls\r"),
        ev.MaskedInput(t=2_000_000_000, count=9),
        ev.SealedInput(t=3_000_000_000, count=4, sealed=b"\x01" * 40),
        ev.Output(t=4_000_000_000, data="é".encode()[:1]),
        ev.Output(t=4_100_000_000, data="é".encode()[1:]),
    )
    assert [line[1] for line in lines(*recorded)[1:]] == ["o"]  # type: ignore[index]
    shown = lines(*recorded, with_input=True)[1:]
    assert shown == [
        [1.0, "i", "ls\r"],
        [2.0, "m", "masked input: 9 bytes, not echoed"],
        [3.0, "m", "masked input: 4 bytes, not echoed"],
        [4.1, "o", "é"],  # a character split between two events is written whole
    ]


def test_a_recording_without_its_start_still_has_a_header() -> None:
    cast = lines(ev.Output(t=0, data=b"x"))
    assert cast == [{"version": 2, "width": 80, "height": 24}, [0.0, "o", "x"]]


def test_policy_and_moderation_notices_are_markers_and_other_notices_are_not() -> None:
    cast = lines(
        START,
        ev.Notice(t=1_000_000_000, code="policy", text="reject by rule no-rm: rm -rf /srv"),
        ev.Notice(t=2_000_000_000, code="terminal-size", text="cut"),
        ev.Notice(t=3_000_000_000, code="moderation", text="moderator mia left"),
    )
    assert cast[1:] == [
        [1.0, "m", "policy: reject by rule no-rm: rm -rf /srv"],
        [3.0, "m", "moderation: moderator mia left"],
    ]
