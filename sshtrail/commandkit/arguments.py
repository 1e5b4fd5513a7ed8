"""Argument types the commands share: a number within bounds, a TCP port, an URL, a
moment and an offset (:mod:`sshtrail.timespec`)."""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable
from typing import TypeVar

from sshtrail import timespec

N = TypeVar("N", int, float)
T = TypeVar("T")


def ranged(kind: Callable[[str], N], low: N, high: N | None, what: str) -> Callable[[str], N]:
    """An argparse type: ``kind(text)`` from ``low`` to ``high`` (None: no upper bound),
    else ``'TEXT' is not WHAT``. NaN is never within bounds."""

    def parse(text: str) -> N:
        try:
            value = kind(text)
        except ValueError:
            value = None
        if value is None or not low <= value or (high is not None and not value <= high):
            raise argparse.ArgumentTypeError(f"{text!r} is not {what}")
        return value

    return parse


port = ranged(int, 0, 65535, "a TCP port (0-65535)")
positive = ranged(int, 1, None, "a positive whole number")


def http_url(text: str) -> str:
    """An ``http://`` or ``https://`` URL (nothing else may be fetched)."""
    if not is_http(text):
        raise argparse.ArgumentTypeError(f"{text!r} is not an http:// or https:// URL")
    return text


def is_http(url: str) -> bool:
    return url.startswith(("http://", "https://"))


def _argument(parse: Callable[[str], T]) -> Callable[[str], T]:
    """``parse`` as an argparse type: its ValueError's text is the error shown."""

    def typed(text: str) -> T:
        try:
            return parse(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    typed.__name__ = parse.__name__
    return typed


moment = _argument(timespec.moment)
future_moment = _argument(timespec.later)
offset = _argument(timespec.offset)


def matching(pattern: str, message: str) -> Callable[[str], str]:
    """An argparse type: text that matches ``pattern`` whole, else ``message`` (where
    ``{text!r}`` stands for the text given)."""
    whole = re.compile(pattern)

    def parse(text: str) -> str:
        if not whole.fullmatch(text):
            raise argparse.ArgumentTypeError(message.format(text=text))
        return text

    return parse
