"""The screen at each piece's start of the recordings being played, kept while they are.

Computed on demand: the recording is fed to the emulator up to the piece asked
for, and the screen at every piece boundary passed is kept (its paint is a few
kilobytes), with the emulator where it stopped. A player asks for pieces in
order as it plays and fetches the next one ahead, so each piece costs emulating
the one before it; one asked again is answered from what is kept.

A seek further than :data:`FAR` bytes of recording ahead does not emulate
everything before it -- the emulator draws about 4 MB of text a second and
well under 1 MB of binary-looking output (docs/performance.md), so a search
hit an hour into a recording would wait minutes. The screen is drawn on a
fresh terminal from the last :data:`WINDOW` bytes before the piece instead:
output that filled the screen since (any scrolling text, any full-screen
program's redraw) comes out the same; what was drawn before that window and
never overwritten is missing, and the terminal size is the session's first
until a resize in the window. Playing on from there is emulated in order.
:data:`SESSIONS` recordings are kept, the least recently played forgotten
first.
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
#: Stored bytes before a piece a seek draws its screen from (see above).
WINDOW = 256 << 10
#: Stored bytes ahead of the emulator beyond which a piece is a seek, not the next.
FAR = 2 << 20
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
            if n < played.at:  # only the paints of pieces reached are kept
                played.state, played.at = ScreenState(*size), 0
            far = found.window(n, FAR)
            if far is not None and found.pieces[played.at].first_seq < far.first_seq:
                played.state, played.at = ScreenState(*size), n  # too far ahead: see above
                for _seq, event in events(found.window(n, WINDOW) or far):
                    played.state.feed(event)
                played.paints[n] = (*played.state.size, played.state.paint())
            while played.at < n:
                for _seq, event in events(found.pieces[played.at]):
                    played.state.feed(event)
                played.at += 1
                played.paints[played.at] = (*played.state.size, played.state.paint())
            return played.paints[n]
