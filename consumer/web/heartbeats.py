"""Who moderates from this console now: the last heartbeat of each (auditor, session).

The gateway decides who counts, from the presence on the control topic; the console
keeps its own small account only so that the access log tells when a moderation from
here began and ended. A moderation begins at a join (or at a heartbeat after the last
one lapsed: the tab was asleep, or the console restarted), ends at an explicit leave,
or lapses when no heartbeat came for :data:`~sshtrail.control.PRESENCE_TTL_S` -- the
same time after which the gateway stops counting the moderator. The map is bounded
(:data:`MAX_TRACKED`): a beat that would grow it further is refused, never silently
dropped, so every moderation that began here is told ended. Thread-safe.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from sshtrail import control

#: The most moderations tracked at once (auditors x sessions; a few in practice).
MAX_TRACKED = 10_000


@dataclass(frozen=True, slots=True)
class Moderating:
    """One auditor moderating one session from this console."""

    auditor: str
    session: str
    #: Where the last heartbeat came from, for the access log's line when it lapses.
    address: str


class TooMany(Exception):
    """:data:`MAX_TRACKED` moderations are tracked already."""


class Ended(Exception):
    """A heartbeat for a moderation its auditor ended here a moment ago: one that was on
    its way when they pressed "End moderation". Only a join begins it again."""


#: How long an explicit leave is remembered, to refuse the heartbeats still on their way.
LEFT_MEMORY_S = 30.0


class Heartbeats:
    """The last heartbeat of every moderation from this console, lapsing after the TTL."""

    def __init__(
        self,
        ttl_s: float = control.PRESENCE_TTL_S,
        clock: Callable[[], float] = time.monotonic,
        limit: int = MAX_TRACKED,
    ) -> None:
        self._ttl_s = ttl_s
        self._clock = clock
        self._limit = limit
        self._lock = threading.Lock()
        self._last: dict[tuple[str, str], tuple[float, Moderating]] = {}
        #: Explicit leaves of the last :data:`LEFT_MEMORY_S`, by (auditor, session).
        self._left: dict[tuple[str, str], float] = {}

    def __len__(self) -> int:
        with self._lock:
            return len(self._last)

    def beat(self, auditor: str, session: str, address: str, *, joining: bool = False) -> bool:
        """A join or heartbeat: True if it begins a moderation (none was tracked).
        :class:`TooMany` when the map is full and this would add to it; :class:`Ended`
        for a heartbeat (not a join) after an explicit leave of the same moderation."""
        key = (auditor, session)
        with self._lock:
            left = self._left.pop(key, None)
            if not joining and left is not None and left >= self._clock() - LEFT_MEMORY_S:
                self._left[key] = left
                raise Ended("you ended your moderation of this session: join again")
            begins = key not in self._last
            if begins and len(self._last) >= self._limit:
                raise TooMany(f"{self._limit} moderations are going on from this console")
            self._last[key] = (self._clock(), Moderating(auditor, session, address))
            return begins

    def end(self, auditor: str, session: str) -> bool:
        """An explicit leave: True if it ends a moderation that was tracked."""
        now = self._clock()
        with self._lock:
            for key in [k for k, at in self._left.items() if at < now - LEFT_MEMORY_S]:
                del self._left[key]
            if len(self._left) < self._limit:
                self._left[(auditor, session)] = now
            return self._last.pop((auditor, session), None) is not None

    def lapsed(self) -> list[Moderating]:
        """The moderations whose heartbeats stopped, forgotten as they are returned."""
        oldest = self._clock() - self._ttl_s
        with self._lock:
            gone = [key for key, (at, _) in self._last.items() if at < oldest]
            return [self._last.pop(key)[1] for key in gone]

    def lapsed_all(self) -> list[Moderating]:
        """Every moderation tracked, forgotten (the console stops: they all end)."""
        with self._lock:
            gone = [moderating for _, moderating in self._last.values()]
            self._last.clear()
            return gone
