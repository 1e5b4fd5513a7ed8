"""Which file-transfer protocol a channel speaks: by its first bytes, or by what it ran.

A transfer is known by what it is, not by how it was asked for. The bytes come
first: the client's first packet a length-prefixed ``SSH_FXP_INIT`` (type 1) is
SFTP, whatever runs it (``sftp -s /usr/lib/openssh/sftp-server`` sends an ``exec``
of that path; a subsystem may have any name); a first line ``C0644 SIZE NAME``,
``D0755 0 NAME`` or ``T...`` from the client (an upload), or from the target after
the client's NUL (a download), is SCP, whatever its binary is called. Only the
first :data:`SNIFF_BYTES` each way are looked at. When the bytes say nothing (a
session that moved nothing), the words do: the ``sftp`` subsystem, or a command
line that runs ``sftp-server`` or ``scp -t``/``-f`` however it is wrapped (``env``,
``sh -c``, quotes, a path: :mod:`sshtrail.shellwords`).

Bytes that begin like a protocol but end before they can be read are
:attr:`Recognised.unreadable`, with the reason, so an auditor sees the session;
they are never passed over as no transfer at all.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sshtrail.scp import ScpMode, scp_arguments, scp_mode
from sshtrail.sftp import INIT, MAX_PACKET
from sshtrail.shellwords import commands, program_at

SFTP, SCP = "sftp", "scp"
#: Bytes looked at each way: an SCP control line at its longest (scp.MAX_LINE) and more.
SNIFF_BYTES = 16 << 10
#: The channel requests that run one program on the channel's bytes.
PROGRAM_REQUESTS = frozenset({"exec", "subsystem"})

#: An SFTP INIT of any version below 2**24, as far as the version's last byte.
_INIT_START = b"\x00\x00\x00\x05\x01\x00\x00\x00"
#: The start of an SCP control line: a file or directory with its mode, or times.
_SCP_START = re.compile(rb"[CD][0-7]{4} [0-9]|T[0-9]+ [0-9]+ ")


@dataclass(frozen=True)
class Recognised:
    """A channel that speaks a transfer protocol."""

    protocol: str  # SFTP or SCP
    #: For SCP: which way, and the path the target was given when its words say.
    scp: ScpMode | None = None
    #: Why bytes that look like this protocol cannot be read; None when they can.
    unreadable: str | None = None


def may_carry(request: str | None) -> bool:
    """Whether a channel asked for as ``request`` may carry a transfer: one that runs a
    program on its bytes (not a shell's terminal, nor a forwarded connection)."""
    return request in PROGRAM_REQUESTS


def recognise(
    request: str | None, command: str | None, client: bytes, server: bytes, ended: bool
) -> Recognised | None:
    """The protocol of a channel asked for as ``request`` ``command`` whose first bytes
    are ``client`` (what the operator's client sent) and ``server`` (the target's
    standard output), each at most :data:`SNIFF_BYTES`; ``ended``: the session ended
    within them. None for a channel that is no transfer."""
    if not may_carry(request):
        return None
    return by_bytes(client, server, ended, command) or by_words(request, command)


def by_words(request: str | None, command: str | None) -> Recognised | None:
    """The protocol the words of a channel request name: the ``sftp`` subsystem, or a
    command line running ``sftp-server`` or ``scp -t``/``-f``; None otherwise."""
    if request == "subsystem" and command == "sftp":
        return Recognised(SFTP)
    if request != "exec" or not command:
        return None
    if any(program_at(words, "sftp-server") is not None for words in commands(command)):
        return Recognised(SFTP)
    mode = scp_mode(command)
    return Recognised(SCP, mode) if mode is not None else None


def by_bytes(
    client: bytes, server: bytes, ended: bool, command: str | None = None
) -> Recognised | None:
    """The protocol the first bytes each way are (see the module's docstring); None
    when they are neither. ``command`` gives an SCP transfer its path, when it says."""
    if client[:1] == b"\0" and (problem := _scp_start(server, ended)) is not None:
        return _scp("source", problem, command)
    if (problem := _scp_start(client, ended)) is not None:
        return _scp("sink", problem, command)
    return _sftp_start(client, ended)


def _scp_start(sent: bytes, ended: bool) -> str | None:
    """``""`` when ``sent`` starts with an SCP control line; why it cannot be read when it
    starts like one and the session ended before the line did; None when it does not."""
    if not _SCP_START.match(sent):
        return None
    if ended and b"\n" not in sent:
        return "the session ended inside its first control line"
    return ""


def _scp(mode: str, problem: str, command: str | None) -> Recognised:
    """SCP sent ``mode`` way, with the path of the command whose arguments say so (the
    program may have any name: ``$S -t /tmp``)."""
    found = next(
        (
            given
            for words in commands(command or "")
            for at in range(len(words))  # wrapped or not: exec $S -t /tmp
            if (given := scp_arguments(words[at + 1 :])) is not None and given.mode == mode
        ),
        ScpMode(mode, "", frozenset()),
    )
    unreadable = f"its bytes look like SCP, but {problem}" if problem else None
    return Recognised(SCP, found, unreadable)


def _sftp_start(client: bytes, ended: bool) -> Recognised | None:
    """SFTP when the client's first bytes are an INIT packet (or, from a session that
    ended within them, the start of one); None otherwise."""
    if len(client) > len(_INIT_START):
        length = int.from_bytes(client[:4], "big")
        if client[4] == INIT and 5 <= length <= MAX_PACKET:
            return Recognised(SFTP)
        return None
    if len(client) < 4 or not _INIT_START.startswith(client):
        return None  # too little to tell from any other bytes
    if not ended:
        return Recognised(SFTP)  # more is stored than was looked at: the parser tells
    return Recognised(
        SFTP, unreadable="its bytes look like SFTP, but the session ended inside its INIT packet"
    )
