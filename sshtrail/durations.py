"""Durations as settings and commands write them: ``30s``, ``12h``, ``90d``, ``7y``.

A year is 365 days and a month is not offered: a retention period must mean the same
number of seconds to everyone who reads it (a deletion names the rule that made it).
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Final

_UNITS: Final = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400, "y": 365 * 86400}
_DURATION: Final = re.compile(r"^([0-9]{1,6})([smhdwy])$")
#: Longer than any record is kept: beyond it, a date computed from it would overflow.
MAX: Final = dt.timedelta(days=100 * 365)


def parse_duration(text: str) -> dt.timedelta:
    """``text`` as a duration; :class:`ValueError` naming what is accepted otherwise."""
    found = _DURATION.match(text)
    if found is None:
        raise ValueError(
            f"not a duration: {text[:40]!r} (a whole number and one of s, m, h, d, w, y: "
            "'30s', '12h', '90d', '7y')"
        )
    value = dt.timedelta(seconds=int(found[1]) * _UNITS[found[2]])
    if value > MAX:
        raise ValueError(f"duration {text!r} is longer than 100 years")
    if not value:
        raise ValueError(f"duration {text!r} is zero")
    return value
