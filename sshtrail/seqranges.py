"""A session's gaps as stored: inclusive seq ranges, read and shown in bounded time and memory.

The store writes ``sessions.gaps`` as sorted, disjoint ``[low, high]`` pairs
below the session's last seq. A database writer can put anything there; a
reader never expands ranges into seqs, reads at most :data:`MAX_TEXT`
characters of the column, and turns whatever is not a list the store could
have written into a :class:`Gaps` whose ``problem`` says why, so every
command reports it instead of failing or hanging.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import msgspec

#: The most of ``sessions.gaps`` a reader takes (about 100,000 ranges).
MAX_TEXT = 1 << 20

#: How many ranges a description lists before it says how many more there are.
SHOWN = 20


@dataclass(frozen=True, slots=True)
class Gaps:
    """Inclusive ranges of missing seqs, sorted and disjoint; or why the stored value
    is not such a list (then ``ranges`` is empty)."""

    ranges: tuple[tuple[int, int], ...] = ()
    problem: str | None = None
    #: The problem is only the size: a producer sending every other seq makes a store
    #: write that many ranges, so it is no sign of an edit.
    too_large: bool = False

    def __bool__(self) -> bool:
        return bool(self.ranges) or self.problem is not None

    def describe(self, shown: int = SHOWN) -> str:
        """The ranges as ``show`` prints them, at most ``shown`` of them."""
        if self.problem is not None:
            return f"unreadable: {self.problem}"
        if not self.ranges:
            return "none"
        return describe_ranges(self.ranges, shown)

    def as_json(self) -> list[list[int]]:
        return [[low, high] for low, high in self.ranges]


def describe_ranges(ranges: Sequence[tuple[int, int]], shown: int = SHOWN) -> str:
    """``3, 5-9, ...`` for at most ``shown`` ranges, then how many more there are."""
    text = ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in ranges[:shown])
    more = len(ranges) - shown
    return text + (f" and {more} more ranges" if more > 0 else "")


def read_gaps(text: str | None, length: int | None, last_seq: int | None) -> Gaps:
    """The gaps of a session from the start of its stored ``gaps`` text (``length``:
    the whole text's length) and its ``last_seq``."""
    if text is None:
        return Gaps(problem="no value stored")
    if length is not None and length > MAX_TEXT:
        return Gaps(problem=f"{length:,} characters stored, too many to read", too_large=True)
    try:
        pairs = msgspec.json.decode(text, type=list[tuple[int, int]])
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        return Gaps(problem=f"not a list of [low, high] pairs of seqs ({exc})")
    return check(pairs, last_seq)


def check(pairs: Sequence[tuple[int, int]], last_seq: int | None) -> Gaps:
    """``pairs`` as gaps, or the first way they are not what a store writes."""
    previous = -1
    for index, (low, high) in enumerate(pairs):
        where = f"range {index + 1} of {len(pairs):,} ({low}-{high})"
        if low < 0 or high < low:
            return Gaps(problem=f"{where} is negative or reversed")
        if low <= previous:
            return Gaps(problem=f"{where} overlaps or comes before the one before it")
        if last_seq is None or high >= last_seq:
            return Gaps(problem=f"{where} is not below the last seq stored ({last_seq})")
        previous = high
    return Gaps(tuple((low, high) for low, high in pairs))


def complement(gaps: Sequence[Sequence[int]], last_seq: int) -> list[tuple[int, int]]:
    """The inclusive ranges of ``0..last_seq`` outside ``gaps`` (taken in any order,
    clipped to that span), without expanding any range."""
    spans = sorted((max(g[0], 0), min(g[1], last_seq)) for g in gaps if len(g) == 2)
    kept: list[tuple[int, int]] = []
    start = 0
    for low, high in spans:
        if low > high or high < start:
            continue
        if low > start:
            kept.append((start, low - 1))
        start = high + 1
    if start <= last_seq:
        kept.append((start, last_seq))
    return kept
