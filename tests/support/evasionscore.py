"""Issue 41's scoreboard: a case, what the pipeline showed of its session, and the table.

A case is scored found when ``search`` finds its needle (any kind: command, input,
output, screen, transfer) and listed when its own check of what ``show`` and
``transfers`` say holds (the command listed, the session flagged, or -- for the
precision cases -- listed as the issue describes). The table is what a reader of
``docs/search.md`` compares the recorded score with.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Seen:
    """What ``show --json`` and ``transfers --json`` said of one session."""

    commands: list[tuple[str, bool]]  # (text, certain), in order
    flags: list[str]
    masked: str | None
    transfers: list[tuple[str, str, int, str]] = field(default_factory=list)
    masked_bytes: int = 0  # typed bytes no screen showed, kept as a count only

    def texts(self) -> list[str]:
        return [text.rstrip() for text, _ in self.commands]

    def has(self, text: str, certain: bool | None = None) -> bool:
        return any(
            seen.rstrip() == text and (certain is None or sure == certain)
            for seen, sure in self.commands
        )

    def count(self, text: str) -> int:
        return self.texts().count(text)


#: A case's check: whether its session shows it as the issue wants, and what it saw.
Check = Callable[[Seen], tuple[bool, str]]


@dataclass(frozen=True)
class Case:
    number: int
    name: str
    session: str  # the name of the session it is typed in
    needle: str  # what search must find
    check: Check
    #: Why the case does not hold yet (empty: it must hold).
    missed: str = ""


@dataclass(frozen=True)
class Score:
    case: Case
    found: list[str]  # the kinds of the hits holding the needle
    listed: bool
    detail: str

    @property
    def held(self) -> bool:
        return bool(self.found) and self.listed


def score(
    cases: Sequence[Case], hits: Sequence[dict[str, object]], seen: dict[str, Seen]
) -> list[Score]:
    scores = []
    for case in cases:
        kinds = sorted(
            {str(hit["kind"]) for hit in hits if case.needle.lower() in str(hit["text"]).lower()}
        )
        listed, detail = case.check(seen[case.session])
        scores.append(Score(case, kinds, listed, detail))
    return scores


def table(scores: Sequence[Score]) -> str:
    found = sum(bool(s.found) for s in scores)
    held = sum(s.held for s in scores)
    lines = [f"{'#':>2}  {'case':<44} {'search':<16} {'listed':<6} result", "-" * 100]
    for s in scores:
        result = "held" if s.held else f"MISSED ({s.case.missed or 'unexpected'})"
        lines.append(
            f"{s.case.number:>2}  {s.case.name:<44} {','.join(s.found) or '-':<16} "
            f"{'yes' if s.listed else 'no':<6} {result}"
        )
        if not s.held or not s.listed:
            lines.append(f"    saw: {s.detail}")
    lines.append(
        f"search found {found}/{len(scores)}; held (found and listed) {held}/{len(scores)}"
    )
    return "\n".join(lines)


def listed(text: str, times: int = 1) -> Check:
    """The command is listed by ``show`` (``times`` times or more)."""
    return lambda seen: (
        seen.count(text) >= times,
        f"{seen.count(text)}x {text!r} in {seen.texts()}",
    )


def flagged(flag: str, masked: str | None = None) -> Check:
    """The session carries ``flag`` (and the masked-input mark ``masked``)."""

    def check(seen: Seen) -> tuple[bool, str]:
        ok = flag in seen.flags and (masked is None or seen.masked == masked)
        return ok, f"flags {seen.flags}, masked {seen.masked}"

    return check


def containing(needle: str) -> Check:
    """Some command listed holds ``needle`` (a here-document, lines on PS2)."""
    return lambda seen: (
        any(needle in text for text in seen.texts()),
        f"commands {[t for t in seen.texts() if needle in t]}",
    )


def moved(path: str, sha256: str) -> Check:
    """``transfers`` lists an upload of ``path`` with this SHA-256."""
    return lambda seen: (
        any(op == "upload" and p == path and sha == sha256 for op, p, _, sha in seen.transfers),
        f"transfers {seen.transfers}, flags {seen.flags}",
    )


def both(*checks: Check) -> Check:
    def check(seen: Seen) -> tuple[bool, str]:
        results = [c(seen) for c in checks]
        return all(ok for ok, _ in results), "; ".join(detail for _, detail in results)

    return check


def listed_as(text: str, certain: bool) -> Check:
    """The command is listed, marked certain or uncertain (``(?: ...)`` in ``show``)."""
    return lambda seen: (
        seen.has(text, certain),
        f"{text!r} certain={certain} in {seen.commands}",
    )


def not_masked() -> Check:
    return lambda seen: (seen.masked is None, f"masked {seen.masked}")


def either(*checks: Check) -> Check:
    def check(seen: Seen) -> tuple[bool, str]:
        results = [c(seen) for c in checks]
        return any(ok for ok, _ in results), "; ".join(detail for _, detail in results)

    return check


def only(text: str, needle: str) -> Check:
    """The one command holding ``needle`` is exactly ``text`` (nothing glued to it)."""

    def check(seen: Seen) -> tuple[bool, str]:
        holding = [t for t in seen.texts() if needle in t]
        return holding == [text], f"commands {holding}"

    return check


def no_piece() -> Check:
    """No command listed ends in a backslash: a continued line is one command."""
    return lambda seen: (
        not any(t.endswith("\\") for t in seen.texts()),
        f"pieces {[t for t in seen.texts() if t.endswith(chr(92))]}",
    )


def flagged_only(masked: str) -> Check:
    """The session carries the masked-input mark ``masked`` and no flag."""
    return lambda seen: (
        seen.masked == masked and not seen.flags,
        f"flags {seen.flags}, masked {seen.masked}",
    )


def masked_exactly(*secrets: str) -> Check:
    """Every key of each secret typed blind, and nothing more, is masked: a key the
    gateway took for echoed would be in the recording in clear (and not counted)."""
    count = sum(len(secret) for secret in secrets)
    return lambda seen: (seen.masked_bytes == count, f"masked {seen.masked_bytes} of {count}")


def absent(text: str) -> Check:
    """No command listed is ``text`` (output of a line typed blind, read as a command)."""
    return lambda seen: (text not in seen.texts(), f"{text!r} listed: {text in seen.texts()}")
