"""Moderated sessions as the auditors see them: where each stands, and being present.

The gateway holding a moderated session publishes a :class:`~sshtrail.control.
ModerationState` at every change (waiting, running, paused, ended, refused; who is
present), signed by its recording key; :class:`ModerationBoard` keeps the latest one of
each session of the look-back. A session waiting past its gateway's deadline without a
word is ``expired``: its gateway stopped without saying.

A moderator is present by publishing :class:`~sshtrail.control.Presence` messages,
signed by the control key (:class:`PresenceSender`): ``join``, ``here`` every
:data:`~sshtrail.control.HEARTBEAT_S`, ``leave``. Whether they count is the gateway's
to decide, by the session's ``[[moderation]]`` table (docs/moderation.md).

Used by ``sshtrail moderate``, ``sshtrail watch --moderate`` and the web console.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from consumer.controlboard import ControlBoard
from sshtrail import control
from sshtrail.errors import BrokerError
from sshtrail.kafka.adapters import KafkaProducer
from sshtrail.kafka.config import client_config
from sshtrail.kafka.ports import DeliveryError
from sshtrail.scope import Scope
from sshtrail.settings import Settings

#: How far back the board looks, in seconds (a moderated session waits at most a day).
LOOK_BACK_S = 24 * 3600
Status = Literal["waiting", "running", "paused", "ended", "refused", "expired"]
#: The states in which a session needs a moderator (to start, or to go on).
NEEDS_MODERATOR: tuple[Status, ...] = ("waiting", "paused")


@dataclass(slots=True)
class ModerationItem:
    """One moderated session: the latest word of its gateway."""

    state: control.ModerationState

    @property
    def session(self) -> str:
        return self.state.session

    @property
    def session_id(self) -> uuid.UUID | None:
        try:
            return uuid.UUID(self.state.session)
        except ValueError:
            return None

    def status(self, now_ns: int) -> Status:
        state = self.state
        if state.phase == "waiting" and state.deadline and now_ns > state.deadline:
            return "expired"
        return state.phase

    def needs_moderator(self, now_ns: int) -> bool:
        return self.status(now_ns) in NEEDS_MODERATOR

    def seconds_left(self, now_ns: int) -> float | None:
        """While waiting: how long the gateway still waits for moderators."""
        if self.state.phase != "waiting" or not self.state.deadline:
            return None
        return max(0.0, (self.state.deadline - now_ns) / 1e9)

    def as_json(self, now_ns: int) -> dict[str, object]:
        state = self.state
        left = self.seconds_left(now_ns)
        return {
            "session": state.session,
            "status": self.status(now_ns),
            "operator": state.operator,
            "target": state.target,
            "rule": state.rule,
            "needed": state.needed,
            "present": list(state.present),
            "on_leave": state.on_leave,
            "gateway": state.gateway,
            "since_ns": state.at,
            "seconds_left": None if left is None else round(left, 1),
            "detail": state.detail,
        }


class ModerationBoard(ControlBoard):
    """The moderated sessions on the control topic, each at its gateway's latest word."""

    def __init__(self, settings: Settings, look_back_s: float = LOOK_BACK_S) -> None:
        super().__init__(settings, look_back_s, "moderated sessions")
        self._items: dict[str, ModerationItem] = {}

    def current(self) -> list[ModerationItem]:
        """Every moderated session of the look-back, the longest waiting first."""
        with self.reading():
            oldest = control.now_ns() - int(self.look_back_s * 1e9)
            for session in [s for s, item in self._items.items() if item.state.at < oldest]:
                del self._items[session]
            return sorted(self._items.values(), key=lambda item: item.state.at)

    def _take(self, key: bytes, value: bytes | None) -> None:
        if not key.startswith(control.MODERATION_PREFIX):
            return
        found = self.decoded(value, self.gateways, key)
        if not isinstance(found, control.ModerationState):
            return  # not signed by a gateway trusted here: not a moderation state
        known = self._items.get(found.session)
        if known is None or found.at >= known.state.at:  # partitions may be read unevenly
            self._items[found.session] = ModerationItem(found)


def read_moderations(settings: Settings, look_back_s: float = LOOK_BACK_S) -> list[ModerationItem]:
    board = ModerationBoard(settings, look_back_s)
    try:
        return board.current()
    finally:
        board.close()


def in_scope(items: Iterable[ModerationItem], scope: Scope) -> list[ModerationItem]:
    """The moderated sessions ``scope`` may see (operator and target)."""
    return [item for item in items if scope.allows(item.state.operator, item.state.target)]


class PresenceSender:
    """Publishes a moderator's presence, signed by the control key. Thread-safe."""

    def __init__(self, settings: Settings, via: str) -> None:
        self._settings = settings
        self._via = via
        self._signer = control.signing_key(settings)
        self._lock = threading.Lock()
        self._producer = KafkaProducer(
            client_config(
                settings,
                **{
                    "client.id": f"sshtrail-presence-{settings.instance}",
                    "linger.ms": 0,
                    # A heartbeat later than this is no heartbeat (PRESENCE_TTL_S).
                    "message.timeout.ms": int(control.PRESENCE_TTL_S * 1000),
                },
            )
        )

    def send(
        self,
        session: str,
        moderator: str,
        groups: Iterable[str],
        state: control.PresenceState,
        *,
        wait_s: float = 0.0,
    ) -> None:
        """Publish one presence; with ``wait_s``, wait that long for the broker to take
        it. :class:`~sshtrail.errors.BrokerError` if it cannot be sent."""
        message = control.Presence(
            request_id=control.new_id(),
            at=control.now_ns(),
            session=session,
            moderator=moderator,
            groups=tuple(groups),
            state=state,
            via=self._via,
        )
        # This message's own failure only: a heartbeat lost while the broker was away
        # is not the error of a later join or leave.
        failures: list[DeliveryError] = []
        with self._lock:
            self._producer.produce(
                self._settings.control.topic,
                control.key_of(message),
                control.encode(message, self._signer),
                lambda error: failures.append(error) if error is not None else None,
            )
            self._producer.poll(0)
            if wait_s:
                left = self._producer.flush(wait_s)
                if left or failures:
                    failure = failures[0] if failures else "not acknowledged"
                    raise BrokerError(
                        f"cannot send the presence to {self._settings.control.topic}: {failure}"
                    )

    def close(self) -> None:
        with self._lock:
            self._producer.flush(2.0)
