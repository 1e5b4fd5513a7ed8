"""The values sessions and search documents are classified by, without the database.

The command-line declarations (:mod:`sshtrail.cli.commands`) offer them as
choices; importing :mod:`sshtrail.models` for that would load SQLAlchemy
before any command starts (docs/performance.md, "CLI start-up").
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from typing import Literal


class SessionStatus(enum.StrEnum):
    ACTIVE = "active"  # start seen, end not yet
    CLOSED = "closed"  # end seen, no gaps
    INCOMPLETE = "incomplete"  # chunks missing (gaps)
    #: Its gateway stopped without ending it: the gateway, started again, ended it
    #: (signed), or the store gave up on it after a silence (sshtrail/interrupted.py).
    INTERRUPTED = "interrupted"
    REFUSED = "refused"  # a login or channel the gateway refused (an audit record)
    QUARANTINED = "quarantined"  # chunks of it the database refused: in the dead-letter topic


class MaskedInput(enum.StrEnum):
    """What a session's masked (never echoed) input looks like (docs/recording.md)."""

    MASKED = "masked"  # some, as a password prompt gives
    SUSPICIOUS = "suspicious"  # echo turned off by the operator, or lines typed blind

    def at_least(self) -> list[str]:
        """The verdicts a filter for this one takes: a suspicious session is masked too."""
        if self is MaskedInput.SUSPICIOUS:
            return [self.value]
        return [MaskedInput.MASKED.value, MaskedInput.SUSPICIOUS.value]


class PolicyMark(enum.StrEnum):
    """What the command policy did in a session, the strongest of its decisions
    (docs/policy.md): ``warned`` -- a command ran after a warning; ``reviewed`` -- a
    command was held for an auditor's approval (and approved, or the session ended
    while it waited); ``rejected`` -- a command, or the exec request itself, was
    refused (by a rule, or by its review)."""

    WARNED = "warned"
    REVIEWED = "reviewed"
    REJECTED = "rejected"

    def at_least(self) -> list[str]:
        """The marks a filter for this one takes: the session's strongest mark is this
        one or a stronger (a session with a rejection was looked at by the policy as
        much as one warned)."""
        order = list(PolicyMark)
        return [mark.value for mark in order[order.index(self) :]]


class SessionFlag(enum.StrEnum):
    """Why a session deserves an auditor's eye (docs/recording.md, "Flags"); the store
    group sets them as it reads the session's events (consumer/sessionflags.py), but
    ``uncertain-prompt``, which only the index group's terminal reader can tell: it is
    kept in the search index and joined to the store's rows (sshtrail/promptflag.py)."""

    BLIND_EVAL = "blind-eval"  # the masked-input mark is ``suspicious``
    PROMPT_ERASES = "prompt-erases"  # entered lines erased by a home + delete/erase
    BINARY_STDIN = "binary-stdin"  # an interpreter fed bytes that are not text
    TRANSFER_UNREQUESTED = "transfer-unrequested"  # a transfer no request named
    UNCERTAIN_PROMPT = "uncertain-prompt"  # most commands' prompts not told apart (index)


#: What ``sessions --flag`` and the console take besides a flag's name: any flag at all.
ANY_FLAG = "any"
#: What ``sessions --flag`` and the console's filter offer.
FLAG_CHOICES = (*(flag.value for flag in SessionFlag), ANY_FLAG)


def chosen_flag(text: str | None) -> SessionFlag | Literal["any"] | None:
    """A flag filter as given (one of :data:`FLAG_CHOICES`, or nothing); ValueError else."""
    if not text:
        return None
    return "any" if text == ANY_FLAG else SessionFlag(text)


def joined_flags(flags: Iterable[str]) -> str | None:
    """Flags as the ``flags`` column keeps them: sorted, comma-separated; NULL for none."""
    return ",".join(sorted(set(flags))) or None


def split_flags(column: str | None) -> list[str]:
    """The flag names of a ``flags`` column, sorted."""
    return sorted({name for name in (column or "").split(",") if name})


#: What a search document is: a command, an output line, a row of a full-screen
#: program's screen, session metadata, or input given to a command.
Kind = Literal["command", "output", "screen", "meta", "input", "transfer"]
#: ``transfer`` hits are file paths of SFTP/SCP operations, found in the store.
KINDS: tuple[Kind, ...] = ("command", "output", "screen", "meta", "input", "transfer")
