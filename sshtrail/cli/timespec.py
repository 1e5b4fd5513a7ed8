"""Times on the command line: ``2h`` ago, or an ISO 8601 moment."""

from __future__ import annotations

import argparse
import datetime as dt
import re

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def moment(text: str) -> dt.datetime:
    """``90s``, ``30m``, ``2h``, ``7d``, ``1w`` before now, or an ISO date/time (UTC if no zone)."""
    relative = re.fullmatch(r"(\d{1,9})([smhdw])", text.strip())
    if relative:
        seconds = int(relative[1]) * _UNITS[relative[2]]
        return dt.datetime.now(dt.UTC) - dt.timedelta(seconds=seconds)
    try:
        parsed = dt.datetime.fromisoformat(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is neither a duration like 2h, 30m, 7d nor an ISO time like 2026-11-25T09:00"
        ) from None
    return parsed.replace(tzinfo=dt.UTC) if parsed.tzinfo is None else parsed.astimezone(dt.UTC)


def offset(text: str) -> float:
    """``HH:MM:SS``, ``MM:SS`` or seconds, as seconds."""
    parts = text.strip().split(":")
    try:
        numbers = [float(p) for p in parts]
    except ValueError:
        numbers = []
    if not 1 <= len(numbers) <= 3 or any(n < 0 for n in numbers):
        raise argparse.ArgumentTypeError(f"{text!r} is not an offset like 01:02:03, 02:03 or 123")
    seconds = 0.0
    for number in numbers:
        seconds = seconds * 60 + number
    return seconds


def clock(seconds: float) -> str:
    """Seconds as ``H:MM:SS``."""
    whole = int(seconds)
    return f"{whole // 3600}:{whole % 3600 // 60:02d}:{whole % 60:02d}"
