"""Stored text made safe to print: control and format characters shown, never obeyed.

Operator names, commands and output lines come from the people being
audited. Printed raw, an ``ESC [ 2 J`` in a command would clear the
auditor's screen, and worse sequences can retitle windows or rewrite what is
shown; a right-to-left override can reorder a line. Everything the CLI
prints outside replay, watch and raw export goes through :func:`visible`.
"""

from __future__ import annotations

import datetime as dt
import unicodedata
from typing import Final

_NAMED: Final = {"\t": "\\t", "\n": "\\n", "\r": "\\r", "\x1b": "\\e", "\\": "\\\\"}


def visible(text: str) -> str:
    """``text`` with every control (Cc) and format (Cf) character escaped.

    ``ESC`` becomes ``\\e``, other controls ``\\xNN``, ``\\uNNNN`` or (beyond the
    Basic Multilingual Plane) ``\\UNNNNNNNN``; a backslash is doubled, so the escaped
    form cannot be forged and reads back as exactly one text. Apply it once, where
    the text is printed (docs/decisions.md, "Session text is escaped once, where it
    is printed"): a second pass doubles every backslash the first one wrote.
    """
    if text.isprintable() and "\\" not in text:
        return text  # the common case, at C speed
    return "".join(_escape(char) for char in text)


def _escape(char: str) -> str:
    if char in _NAMED:
        return _NAMED[char]
    if unicodedata.category(char) in ("Cc", "Cf", "Zl", "Zp"):
        code = ord(char)
        if code < 0x100:
            return f"\\x{code:02x}"
        return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"
    return char


def local_time(moment: dt.datetime | None) -> str:
    """A stored (UTC) time as printed: in this machine's time zone, the zone named
    (``TZ=`` chooses); ``-`` for none."""
    return moment.astimezone().strftime("%Y-%m-%d %H:%M:%S %Z") if moment else "-"
