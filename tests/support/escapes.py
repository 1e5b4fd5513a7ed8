"""The reader of :func:`sshtrail.textsafe.visible`'s escapes, for tests that check what an
auditor reads back is exactly what was recorded (docs/decisions.md, "Session text is
escaped once, where it is printed")."""

from __future__ import annotations

import re

_ESCAPE = re.compile(r"\\(?:([etnr\\])|x([0-9a-f]{2})|u([0-9a-f]{4})|U([0-9a-f]{8}))")
_NAMED = {"e": "\x1b", "t": "\t", "n": "\n", "r": "\r", "\\": "\\"}


def read_back(shown: str) -> str:
    """The text ``shown`` was made from; a backslash that starts no escape is an error
    (``visible`` never writes one)."""
    pieces: list[str] = []
    last = 0
    for found in _ESCAPE.finditer(shown):
        assert "\\" not in shown[last : found.start()], f"a stray backslash in {shown!r}"
        pieces.append(shown[last : found.start()])
        named, code = found[1], found[2] or found[3] or found[4]
        pieces.append(_NAMED[named] if named else chr(int(code, 16)))
        last = found.end()
    assert "\\" not in shown[last:], f"a stray backslash in {shown!r}"
    pieces.append(shown[last:])
    return "".join(pieces)
