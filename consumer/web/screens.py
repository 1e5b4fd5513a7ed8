"""The screen at each piece's start of the recordings being played, kept while they are.

Computed on demand: the recording is fed to the emulator from its beginning up
to the piece asked for, and the screen at every piece boundary passed is kept
(its paint is a few kilobytes), with the emulator where it stopped. A player
asks for pieces in order as it plays and fetches the next one ahead, so each
piece costs emulating the one before it; a seek forward continues from the
furthest point reached, and one backward is answered from what is kept. Only a
first seek deep into a long recording pays for everything before it
(docs/performance.md has what that costs). :data:`SESSIONS` recordings are kept,
the least recently played forgotten first.
"""

from __future__ import annotations

import threading
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from sshtrail.events import Event
from sshtrail.pieces import Piece, PieceMap
from sshtrail.screenstate import ScreenState

#: Recordings whose screens are kept at once.
SESSIONS = 8
#: A screen as the player's snapshot wants it: columns, rows, the bytes that paint it.
Snapshot = tuple[int, int, str]
#: A recording as played: the session, and the idle limit its pieces were cut with.
Key = tuple[uuid.UUID, int]


@dataclass
class _Played:
    """One recording's screens so far: a paint per piece start reached, and the
    emulator at the start of piece ``at``."""

    state: ScreenState
    at: int = 0
    paints: dict[int, Snapshot] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)


class ScreenCache:
    """Screens at piece starts, per session; safe to ask from the console's threads."""

    def __init__(self, sessions: int = SESSIONS) -> None:
        self._sessions = sessions
        self._played: OrderedDict[Key, _Played] = OrderedDict()
        self._lock = threading.Lock()

    def _entry(self, session_id: Key, size: tuple[int, int]) -> _Played:
        with self._lock:
            played = self._played.get(session_id)
            if played is None:
                played = self._played[session_id] = _Played(ScreenState(*size))
            self._played.move_to_end(session_id)
            while len(self._played) > self._sessions:
                self._played.popitem(last=False)
            return played

    def snapshot(
        self,
        session_id: Key,
        found: PieceMap,
        n: int,
        size: tuple[int, int],
        events: Callable[[Piece], Iterable[tuple[int, Event]]],
    ) -> Snapshot:
        """The screen at piece ``n``'s start (``size``: the session's first; ``events``
        reads a piece's (seq, event) from the store)."""
        if n == 0:
            return (*size, "")
        played = self._entry(session_id, size)
        with played.lock:
            if n in played.paints:
                return played.paints[n]
            if n < played.at:  # forgotten: only the paints of pieces reached are kept
                played.state, played.at = ScreenState(*size), 0
            while played.at < n:
                for _seq, event in events(found.pieces[played.at]):
                    played.state.feed(event)
                played.at += 1
                played.paints[played.at] = (*played.state.size, played.state.paint())
            return played.paints[n]
