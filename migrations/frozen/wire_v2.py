"""The ``exec`` event of a chunk in wire format versions 1 and 2, as migration 0002 reads it.

Frozen on 2026-12-01 from ``sshtrail/wire.py`` and ``sshtrail/events.py``:
magic ``ST``, version, flags, a MessagePack body ``[session id, seq, prev,
events]``, each event an array whose first element is its tag; the ``exec``
event is ``["x", t, mode, command]``.
"""

from __future__ import annotations

import msgspec

_MAGIC = b"ST"
_VERSIONS = (1, 2)
_SIGNED = 0x01
_HEADER = 4
_SIGNATURE = 64


def request_of(message: bytes) -> tuple[str, bytes] | None:
    """(mode, command) of the chunk's ``exec`` event; None if it has none or is not a chunk."""
    if len(message) <= _HEADER or message[:2] != _MAGIC or message[2] not in _VERSIONS:
        return None
    end = len(message) - (_SIGNATURE if message[3] & _SIGNED else 0)
    try:
        body = msgspec.msgpack.decode(message[_HEADER:end])
    except msgspec.DecodeError:
        return None
    if not isinstance(body, list) or len(body) != 4 or not isinstance(body[3], list):
        return None
    for event in body[3]:
        if (
            isinstance(event, list)
            and len(event) >= 4
            and event[0] == "x"
            and isinstance(event[2], str)
            and isinstance(event[3], bytes)
        ):
            return event[2], event[3]
    return None
