"""Times as people write them, in commands and the console's filters: ``2h`` ago, an
ISO 8601 moment, an offset into a session; and seconds written as a clock."""

from __future__ import annotations

import datetime as dt
import re

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def moment(text: str) -> dt.datetime:
    """``90s``, ``30m``, ``2h``, ``7d``, ``1w`` before now, or an ISO date/time (UTC if no zone)."""
    relative = re.fullmatch(r"(\d{1,9})([smhdw])", text.strip())
    try:
        if relative:
            seconds = int(relative[1]) * _UNITS[relative[2]]
            return dt.datetime.now(dt.UTC) - dt.timedelta(seconds=seconds)
        parsed = dt.datetime.fromisoformat(text.strip())
        if parsed.tzinfo is None:
            return parsed.replace(tzinfo=dt.UTC)
        return parsed.astimezone(dt.UTC)
    except OverflowError:  # 999999999w ago, or a zone that moves 9999-12-31 past the end
        raise ValueError(f"{text!r} is outside the times that can be written") from None
    except ValueError:
        raise ValueError(
            f"{text!r} is neither a duration like 2h, 30m, 7d nor an ISO time like 2026-11-25T09:00"
        ) from None


def later(text: str) -> dt.datetime:
    """``+7d``, ``+12h`` from now (a plan's time ahead), ``now``, or an ISO date/time
    (UTC if no zone)."""
    ahead = re.fullmatch(r"\+(\d{1,9})([smhdw])", text.strip())
    if ahead:
        try:
            seconds = int(ahead[1]) * _UNITS[ahead[2]]
            return dt.datetime.now(dt.UTC) + dt.timedelta(seconds=seconds)
        except OverflowError:
            raise ValueError(f"{text!r} is outside the times that can be written") from None
    if text.strip() == "now":
        return dt.datetime.now(dt.UTC)
    if re.fullmatch(r"\d{1,9}[smhdw]", text.strip()):
        raise ValueError(f"{text!r}: a time ahead is written +{text.strip()}, or an ISO time")
    return moment(text)


def offset(text: str) -> float:
    """``HH:MM:SS``, ``MM:SS`` or seconds, as seconds."""
    parts = text.strip().split(":")
    try:
        numbers = [float(p) for p in parts]
    except ValueError:
        numbers = []
    if not 1 <= len(numbers) <= 3 or any(n < 0 for n in numbers):
        raise ValueError(f"{text!r} is not an offset like 01:02:03, 02:03 or 123")
    seconds = 0.0
    for number in numbers:
        seconds = seconds * 60 + number
    return seconds


def clock(seconds: float) -> str:
    """Seconds as ``H:MM:SS``."""
    whole = int(seconds)
    return f"{whole // 3600}:{whole % 3600 // 60:02d}:{whole % 60:02d}"
