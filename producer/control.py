"""The gateway's side of the control topic: terminate its sessions, keep operator locks.

A thread reads every partition of ``control.topic`` from its beginning, with
no consumer group (so every gateway sees every request), checks each
message's signature against ``control.trusted_keys``, and hands what is to
be done to the event loop. Only the gateway that holds a session acts on its
termination; it answers with a :class:`~sshtrail.control.Result` signed by
its recording key. Locks are applied by every gateway, from the whole
history of the topic, so a gateway started after a lock knows it.

A message that is not signed by a trusted key is refused: logged with its
partition and offset, never obeyed.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from producer.sessions import LiveSessions
from sshtrail import control
from sshtrail.errors import BrokerError
from sshtrail.kafka.adapters import KafkaProducer, topic_reader
from sshtrail.kafka.config import client_config
from sshtrail.kafka.ports import DeliveryError
from sshtrail.kafka.resting import idle_check_s, rest_until_more
from sshtrail.settings import Settings

log = logging.getLogger(__name__)

#: At least this long between looks at the control topic's log ends while resting.
REST_S = 0.5


@dataclass(frozen=True, slots=True)
class Locked:
    auditor: str
    reason: str


class ControlListener:
    """Reads the control topic on its own thread; acts on the gateway's event loop."""

    def __init__(
        self,
        settings: Settings,
        sessions: LiveSessions,
        signer: Ed25519PrivateKey,
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        self._settings = settings
        self._topic = settings.control.topic
        self._sessions = sessions
        self._signer = signer
        self._loop = loop
        self._trusted = control.trusted_keys(settings)
        self._locks: dict[str, Locked] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._started_ns = control.now_ns()
        self._producer = KafkaProducer(
            client_config(
                settings,
                **{"client.id": f"sshtrail-gateway-control-{settings.instance}", "linger.ms": 0},
            )
        )
        self._thread = threading.Thread(target=self._run, name="control", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._producer.flush(2.0)

    def locked(self, operator: str) -> Locked | None:
        with self._lock:
            return self._locks.get(operator)

    # -- the reading thread ------------------------------------------------------------

    def _run(self) -> None:
        reader = None
        positions: dict[int, int] = {}
        rest = idle_check_s(self._settings)
        if rest:  # each look asks for every partition's log end: not ten times a second
            rest = max(rest, REST_S)
        while not self._stop.is_set():
            try:
                if reader is None:
                    reader = topic_reader(self._settings, "control", timeout=5.0)
                    partitions = reader.partitions(self._topic)
                    positions = {p: reader.watermarks(self._topic, p)[0] for p in partitions}
                    reader.assign(self._topic, positions)
                messages = reader.consume(100, 0.2)
                for message in messages:
                    partition, offset = message.partition(), message.offset()
                    if partition is not None and offset is not None:
                        positions[partition] = offset + 1
                    if (message.key() or b"").startswith(control.RESULT_PREFIX):
                        continue  # gateways' answers, for the requesters
                    where = f"partition {partition} offset {offset}"
                    self._handle(message.value(), f"{self._topic} {where}")
                self._producer.poll(0)
                if not messages and rest:
                    rest_until_more(reader, self._topic, positions, rest, self._stop)
            except BrokerError as exc:
                log.warning("control topic: %s; trying again", exc)
                if reader is not None:
                    reader.close()
                    reader = None
                self._stop.wait(2.0)
        if reader is not None:
            reader.close()

    def _handle(self, value: bytes | None, where: str) -> None:
        try:
            message = control.decode(value, self._trusted)
        except control.ControlError as exc:
            log.warning("refused a control message at %s: %s", where, exc)
            return
        fresh = message.at >= self._started_ns - control.FRESH_S * 1_000_000_000
        if isinstance(message, control.Lock):
            with self._lock:
                self._locks[message.operator] = Locked(message.auditor, message.reason)
            if fresh:
                self._call(lambda: self._locked(message))
        elif isinstance(message, control.Unlock):
            with self._lock:
                self._locks.pop(message.operator, None)
            if fresh:
                self._answer(message.request_id, "unlocked", f"operator {message.operator}")
        elif isinstance(message, control.Terminate) and fresh:
            self._call(lambda: self._terminate(message))

    def _call(self, work: Callable[[], None]) -> None:
        self._loop.call_soon_threadsafe(work)

    # -- on the event loop -------------------------------------------------------------

    def _terminate(self, request: control.Terminate) -> None:
        relay = self._sessions.find(_uuid(request.session))
        if relay is None:
            return  # another gateway's, or ended: the requester hears from no one here
        reason = f"terminated by {request.auditor}: {request.reason}"
        log.info("session %s: %s", request.session, reason)
        relay.close(reason)
        self._answer(request.request_id, "done", reason)

    def _locked(self, request: control.Lock) -> None:
        ended = 0
        if request.end_sessions:
            reason = f"operator locked by {request.auditor}: {request.reason}"
            for relay in self._sessions.of_operator(request.operator):
                relay.close(reason)
                ended += 1
        log.info("operator %s locked by %s", request.operator, request.auditor)
        self._answer(request.request_id, "locked", f"{ended} sessions ended here")

    def _answer(self, request_id: str, outcome: control.Outcome, detail: str) -> None:
        result = control.Result(
            request_id=request_id,
            at=control.now_ns(),
            gateway=self._settings.instance,
            outcome=outcome,
            detail=detail,
        )
        try:
            self._producer.produce(
                self._topic,
                control.key_of(result),
                control.encode(result, self._signer),
                lambda error: _not_delivered(request_id, error),
            )
            self._producer.poll(0)
        except BrokerError as exc:
            log.warning("cannot answer control request %s: %s", request_id, exc)


def _not_delivered(request_id: str, error: DeliveryError | None) -> None:
    if error is not None:
        log.warning("cannot answer control request %s: %s", request_id, error)


def _uuid(text: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(text)
    except ValueError:
        return None
