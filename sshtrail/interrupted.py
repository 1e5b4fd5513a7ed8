"""Sessions whose gateway stopped without ending them: how their end is written and read.

Two ways a session is *interrupted* (docs/operations.md, "A session is
interrupted"):

* its gateway died (kill -9, a crash, the machine) and, started again, found
  the session open in its spool: it ends it with a signed end chunk whose
  reason starts with :data:`REASON_PREFIX`, whose ``t`` is the last event it
  recorded (when the session was last heard from) and whose ``chunks`` says
  the last seq. Such an end is the gateway's word: ``verify`` says ``ok``;
* its gateway never came back: the store group sees no chunk for
  ``consumer.interrupted_after_s`` and marks the session row interrupted
  itself (``sessions.interrupted_at``). No chunk is written, nothing is
  signed: the verdict stays ``unsigned`` and says the end is the store's.

An open session that is merely idle is not taken for either: its gateway
sends a keep-alive notice (:data:`KEEPALIVE`) for it every
``gateway.keepalive_s`` while nothing else is recorded (docs/decisions.md).
"""

from __future__ import annotations

import datetime as dt
from typing import Final

#: How the reason of an end the gateway wrote for an interrupted session starts.
REASON_PREFIX: Final = "interrupted: "
#: The code of the notice a gateway records for an open session nothing else
#: was recorded for lately: the session is alive (not indexed, not shown).
KEEPALIVE: Final = "keepalive"
#: Who ended an interrupted session: its gateway (signed) or the store (not).
BY_GATEWAY: Final = "gateway"
BY_STORE: Final = "store"


def gateway_reason(last_heard: dt.datetime, last_seq: int, now: dt.datetime) -> str:
    """The end reason a restarted gateway signs for a session it found open."""
    return (
        f"{REASON_PREFIX}the gateway stopped unexpectedly; last heard from at "
        f"{_iso(last_heard)} (chunk {last_seq}); ended by the gateway when it started "
        f"again at {_iso(now)}"
    )


def by_gateway(reason: str | None) -> bool:
    """Whether an end reason is that of an end a gateway wrote for an interrupted session."""
    return reason is not None and reason.startswith(REASON_PREFIX)


def marked_by_store(
    end_reason: str | None, interrupted_at: dt.datetime | None, ended_at: dt.datetime | None
) -> bool:
    """Whether the store's mark stands: it gave the session up (setting when it was last
    heard from as its ``ended_at``), no chunk came since (that clears ``ended_at``), and
    no end."""
    return end_reason is None and interrupted_at is not None and ended_at is not None


def store_detail(interrupted_at: dt.datetime, last_heard: dt.datetime | None) -> str:
    """What a verdict says of a session the store marked interrupted: plainly, whose end."""
    heard = f"last heard from at {_iso(last_heard)}" if last_heard else "never heard from"
    return (
        f"no end chunk: marked interrupted by the store at {_iso(interrupted_at)}, its "
        f"gateway silent ({heard}); the end is the store's, not signed by the gateway"
    )


def late_end_note(interrupted_at: dt.datetime) -> str:
    """Said of a session the store had marked interrupted when its gateway's end came."""
    return (
        f"the store had marked it interrupted at {_iso(interrupted_at)}; "
        "its gateway's signed end came later and stands"
    )


def summary(
    end_reason: str | None, interrupted_at: dt.datetime | None, ended_at: dt.datetime | None
) -> str | None:
    """Who ended an interrupted session, for ``show`` and the console; None for others."""
    if by_gateway(end_reason):
        said = "by its gateway, which had stopped unexpectedly (a signed end)"
        return said + (f"; {late_end_note(interrupted_at)}" if interrupted_at else "")
    if interrupted_at is None:
        return None
    if end_reason is not None:
        return late_end_note(interrupted_at)
    if ended_at is None:
        return (
            f"no: the store had marked it interrupted at {_iso(interrupted_at)}, "
            "and chunks of it came after"
        )
    return (
        f"by the store at {_iso(interrupted_at)}: its gateway went silent and never "
        "ended it; no signed end"
    )


def _iso(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
