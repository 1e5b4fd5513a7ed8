"""The sessions open in one gateway process: counted, held together, kept alive in the
record, closed when idle."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import Iterator

from producer.channel import HoldReason, Relay, Side
from producer.sharedcounts import SharedCounts


class LiveSessions:
    """Every open session channel and forwarded connection, and who opened them.

    Holds that apply to all sessions at once (the spool full, the chunk writer
    behind) are kept here too, so a session opened while one is in force
    starts held.
    """

    def __init__(self, shared: SharedCounts | None = None) -> None:
        self._open: dict[Relay, str] = {}  # relay -> operator
        self._by_operator: Counter[str] = Counter()
        self._holds: set[HoldReason] = set()
        #: The counts of every worker of this gateway (``producer/sharedcounts.py``).
        self._shared = shared

    def __len__(self) -> int:
        return len(self._open)

    def __iter__(self) -> Iterator[Relay]:
        return iter(list(self._open))

    def count_of(self, operator: str) -> int:
        """How many sessions the operator has open (in every worker of the gateway)."""
        shared = None if self._shared is None else self._shared.of(operator)
        return self._by_operator[operator] if shared is None else shared

    def gateway_total(self) -> int:
        """How many sessions are open in every worker of the gateway."""
        return len(self._open) if self._shared is None else self._shared.total()

    def relays_of(self, operator: str) -> list[Relay]:
        """The operator's open sessions."""
        return [relay for relay, owner in self._open.items() if owner == operator]

    def find(self, session_id: uuid.UUID | None) -> Relay | None:
        """The open session recorded as ``session_id``, if it is here."""
        for relay in self._open:
            if relay.recorder is not None and relay.recorder.session_id == session_id:
                return relay
        return None

    def add(self, relay: Relay, operator: str) -> None:
        self._open[relay] = operator
        self._by_operator[operator] += 1
        if self._shared is not None:
            self._shared.add(operator, 1)
        for reason in self._holds:
            relay.hold("operator", reason)
            relay.hold("target", reason)

    def remove(self, relay: Relay) -> None:
        operator = self._open.pop(relay, None)
        if operator is not None:
            if self._shared is not None:
                self._shared.add(operator, -1)
            self._by_operator[operator] -= 1
            if self._by_operator[operator] <= 0:
                del self._by_operator[operator]

    def hold_all(self, reason: HoldReason, hold: bool) -> None:
        """Stop (or resume) reading both sides of every session for ``reason``."""
        if hold:
            self._holds.add(reason)
        else:
            self._holds.discard(reason)
        sides: tuple[Side, Side] = ("operator", "target")
        for relay in self._open:
            for side in sides:
                if hold:
                    relay.hold(side, reason)
                else:
                    relay.release(side, reason)

    def held(self, reason: HoldReason) -> bool:
        return reason in self._holds

    def close_all(self, reason: str) -> None:
        for relay in list(self._open):
            relay.close(reason)

    async def close_idle(self, timeout: float) -> None:
        """Close sessions with no traffic either way for ``timeout`` s (runs forever)."""
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(min(timeout / 4, 30))
            for relay in list(self._open):
                if loop.time() - relay.last_activity > timeout:
                    relay.close(f"idle for more than {timeout:g} s")

    async def keep_alive(self, after_s: float) -> None:
        """Record a keep-alive notice for each open session nothing was recorded for in
        ``after_s`` (runs forever): the store group marks sessions without one for
        ``consumer.interrupted_after_s`` interrupted (sshtrail/interrupted.py)."""
        while True:
            await asyncio.sleep(after_s / 4)
            for relay in list(self._open):
                if relay.recorder is not None:
                    relay.recorder.keepalive(after_s)
