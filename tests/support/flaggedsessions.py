"""Recorded event sequences that the store group flags (consumer/sessionflags.py), and
the builders they are made with: a shell's typed lines, an exec fed bytes."""

from __future__ import annotations

import uuid

from sshtrail.events import Event, ExecMode, Input, MaskedInput, Output
from tests.support.recordings import events_session

PROMPT = b"deploy@web01:~$ "
#: What a PS1 (or DEBUG trap) that wipes the screen sends after each command.
WIPE = b"\x1b[H\x1b[24M"
#: An ELF header and every byte value: a binary fed to an interpreter.
ELF = b"\x7fELF\x02\x01\x01\x00" + bytes(range(256)) * 4
#: A script with UTF-8 in it: text.
SCRIPT = b"#!/bin/sh\necho 'd\xc3\xa9ploy\xc3\xa9'\nuname -a\n" * 40
#: The client's first SFTP packet: INIT, version 3.
SFTP_INIT = b"\x00\x00\x00\x05\x01\x00\x00\x00\x03"


def typed(t: int, line: bytes, answer: bytes) -> list[Event]:
    """``line`` typed key by key and echoed, Enter, then ``answer`` and the prompt."""
    events: list[Event] = []
    for key in line:
        t += 1000
        events += [Input(t, bytes([key])), Output(t + 1, bytes([key]))]
    return [*events, Input(t + 2, b"\r"), Output(t + 3, b"\r\n" + answer + PROMPT)]


def shell(lines: list[tuple[bytes, bytes]]) -> list[list[Event]]:
    """A chunk per command line: the line typed, and what the shell answered."""
    return [typed(k * 1_000_000, line, answer) for k, (line, answer) in enumerate(lines, 1)]


def fed(data: bytes) -> list[list[Event]]:
    """``data`` sent as input without a terminal, 300 bytes a chunk."""
    return [[Input(10 + k, data[k : k + 300])] for k in range(0, len(data), 300)]


def wiping_prompt() -> list[list[Event]]:
    return shell([(b"id", WIPE), (b"rm -rf /srv/logs", WIPE), (b"history -c", WIPE)])


def blind_eval() -> list[list[Event]]:
    """``read -s c``, a line typed blind, then ``eval "$c"``."""
    chunks = shell([(b"read -s c", b"")])
    chunks.append([MaskedInput(9_000_000, 12), Input(9_000_001, b"\r"), Output(9_000_002, b"\r\n")])
    return [*chunks, typed(10_000_000, b'eval "$c"', b"")]


def flagged_sessions(operator: str = "alice") -> dict[str, tuple[uuid.UUID, list[bytes]]]:
    """A recording for each flag, and one with none (``plain``), by the flag's name."""
    exec_: dict[str, tuple[ExecMode, bytes, bytes]] = {
        "binary-stdin": ("exec", b"base64 -d | bash", ELF),
        "transfer-unrequested": ("exec", b"cat > /tmp/x", SFTP_INIT),
    }
    made = {
        "prompt-erases": events_session(wiping_prompt(), operator=operator),
        "blind-eval": events_session(blind_eval(), operator=operator),
        "plain": events_session(shell([(b"ls", b"a b\r\n")]), operator=operator),
    }
    for flag, (mode, command, data) in exec_.items():
        made[flag] = events_session(fed(data), operator=operator, term="", request=(mode, command))
    return made
