"""SFTP version 3 packets, built by hand, for tests and the parser benchmark.

Only what a client and a server put on the wire, independent of the parser
under test (``sshtrail/sftp.py``): lengths, types, ids, strings.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable


def u32(value: int) -> bytes:
    return struct.pack(">I", value)


def u64(value: int) -> bytes:
    return struct.pack(">Q", value)


def string(value: bytes | str) -> bytes:
    raw = value.encode() if isinstance(value, str) else value
    return u32(len(raw)) + raw


def packet(kind: int, *fields: bytes) -> bytes:
    body = bytes([kind]) + b"".join(fields)
    return u32(len(body)) + body


def attrs(mode: int | None = None) -> bytes:
    return u32(0x4) + u32(mode) if mode is not None else u32(0)


INIT = packet(1, u32(3))
VERSION = packet(2, u32(3))


def status(ident: int, code: int = 0, message: str = "") -> bytes:
    return packet(101, u32(ident), u32(code), string(message), string(""))


def open_(ident: int, path: str, flags: int) -> bytes:
    return packet(3, u32(ident), string(path), u32(flags), attrs())


def handle(ident: int, value: bytes) -> bytes:
    return packet(102, u32(ident), string(value))


def write(ident: int, handle_: bytes, offset: int, data: bytes) -> bytes:
    return packet(6, u32(ident), string(handle_), u64(offset), string(data))


def read(ident: int, handle_: bytes, offset: int, length: int) -> bytes:
    return packet(5, u32(ident), string(handle_), u64(offset), u32(length))


def data(ident: int, payload: bytes) -> bytes:
    return packet(103, u32(ident), string(payload))


def close(ident: int, handle_: bytes) -> bytes:
    return packet(4, u32(ident), string(handle_))


def path_request(kind: int, ident: int, *paths: str) -> bytes:
    return packet(kind, u32(ident), *(string(p) for p in paths))


def upload(
    path: str, content: bytes, *, first_id: int = 1, piece: int = 32768
) -> tuple[list[bytes], list[bytes]]:
    """(requests, replies) of an upload as OpenSSH's sftp makes one: open, writes, close."""
    ident = first_id
    name = f"h{first_id}".encode()
    requests, replies = [open_(ident, path, 0x1A)], [handle(ident, name)]
    for offset in range(0, len(content), piece):
        ident += 1
        requests.append(write(ident, name, offset, content[offset : offset + piece]))
        replies.append(status(ident))
    ident += 1
    requests.append(close(ident, name))
    replies.append(status(ident))
    return requests, replies


def upload_stream(
    path: str, content: bytes, *, first_id: int = 1, piece: int = 32768
) -> list[tuple[str, bytes]]:
    """The same as recorded: the open and its handle, then the writes sent pipelined
    and their answers, then the close (``"c"``: from the client, ``"s"``: the server)."""
    requests, replies = upload(path, content, first_id=first_id, piece=piece)
    return [
        ("c", requests[0]),
        ("s", replies[0]),
        ("c", joined(requests[1:-1])),
        ("s", joined(replies[1:-1])),
        ("c", requests[-1]),
        ("s", replies[-1]),
    ]


def joined(parts: Iterable[bytes]) -> bytes:
    return b"".join(parts)
