"""The gateway's side of the control topic: terminate its sessions, keep operator locks.

A thread reads every partition of ``control.topic`` from its beginning, with
no consumer group (so every gateway sees every request), checks each
message's signature against ``control.trusted_keys``, and hands what is to
be done to the event loop. Only the gateway that holds a session acts on its
termination; it answers with a :class:`~sshtrail.control.Result` signed by
its recording key. Locks are applied by every gateway, from the whole
history of the topic, so a gateway started after a lock knows it; the one
signed last wins, whatever the order they are read in (``producer/locks.py``).

Answers to the four-eyes reviews this gateway holds go to its :class:`~producer.reviews.
Reviews`, which also publishes the review requests; moderators' presence goes to its
:class:`~producer.moderation.ModerationDesk`, which publishes where moderated sessions
stand.

Until the topic has been read up to the log ends it had when the reader
connected, the gateway does not know who is locked: :meth:`ControlListener.unread`
says why, and logins wait, then are refused (``producer/admission.py``).
Once read, the locks stay known if the broker goes away later.

A message that is not signed by a trusted key, or that came under another
Kafka key than the one it was signed for, is refused: logged with its
partition and offset, never obeyed.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from producer.locks import Locked, Locks
from producer.moderation import ModerationDesk
from producer.reviews import Reviews
from producer.sessions import LiveSessions
from sshtrail import control
from sshtrail.errors import BrokerError
from sshtrail.kafka.adapters import KafkaProducer, topic_reader
from sshtrail.kafka.config import client_config
from sshtrail.kafka.ports import DeliveryError, Message, TopicReader
from sshtrail.kafka.resting import idle_check_s, rest_until_more
from sshtrail.settings import Settings

log = logging.getLogger(__name__)

#: At least this long between looks at the control topic's log ends while resting.
REST_S = 0.5


class ControlListener:
    """Reads the control topic on its own thread; acts on the gateway's event loop."""

    def __init__(
        self,
        settings: Settings,
        sessions: LiveSessions,
        signer: Ed25519PrivateKey,
        loop: asyncio.AbstractEventLoop,
        locks_file: Path | None = None,
    ) -> None:
        self._settings = settings
        self._topic = settings.control.topic
        self._sessions = sessions
        self._signer = signer
        self._loop = loop
        self._trusted = control.trusted_keys(settings)
        # A file per worker of the gateway: each applies every lock itself.
        self._locks = Locks(locks_file or settings.state_file("", "control/locks.json"))
        self._stop = threading.Event()
        #: Set once the topic is read to the log ends found when the reader connected.
        self._read = threading.Event()
        self._read_async = asyncio.Event()
        self._unread = "the control topic is not read yet"
        self._count = 0  # messages read (the log says how many made the lock history)
        self._producer = KafkaProducer(
            client_config(
                settings,
                **{
                    "client.id": f"sshtrail-gateway-control-{settings.instance}",
                    "linger.ms": 0,
                    # A review request not delivered within this ends its review
                    # (unavailable) instead of keeping the operator waiting.
                    "message.timeout.ms": 10_000,
                },
            )
        )
        self._thread = threading.Thread(target=self._run, name="control", daemon=True)
        #: The four-eyes reviews this gateway holds (on the event loop).
        self.reviews = Reviews(settings.instance, settings.policy.review_timeout_s, self.send)
        #: The moderated sessions this gateway holds (on the event loop).
        self.moderation = ModerationDesk(settings.instance, self.send)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._producer.flush(2.0)

    def locked(self, operator: str) -> Locked | None:
        return self._locks.locked(operator)

    def unread(self) -> str | None:
        """None once the lock history is read; until then, why not (for the log and the
        operator)."""
        return None if self._read.is_set() else self._unread

    async def read(self, timeout: float) -> bool:
        """Wait (on the event loop) up to ``timeout`` s for the lock history to be read."""
        if self._read.is_set():
            return True
        try:
            await asyncio.wait_for(self._read_async.wait(), timeout)
        except TimeoutError:
            return False
        return True

    def _now_read(self) -> None:
        self._read.set()
        self._loop.call_soon_threadsafe(self._read_async.set)
        log.info("control topic read to its end (%d messages): operator locks known", self._count)

    # -- the reading thread ------------------------------------------------------------

    def _run(self) -> None:
        reader = None
        positions: dict[int, int] = {}
        ends: dict[int, int] = {}
        rest = idle_check_s(self._settings)
        if rest:  # each look asks for every partition's log end: not ten times a second
            rest = max(rest, REST_S)
        while not self._stop.is_set():
            try:
                if reader is None:
                    reader = self._connect(positions, ends)
                messages = reader.consume(100, 0.2)
                self._take(messages, positions)
                self._save()
                if not self._read.is_set() and all(positions[p] >= e for p, e in ends.items()):
                    self._now_read()
                self._producer.poll(0)
                if not messages and rest and self._read.is_set():
                    rest_until_more(reader, self._topic, positions, rest, self._stop)
            except BrokerError as exc:
                self._broker_error(exc)
                if reader is not None:
                    reader.close()
                    reader = None
                self._stop.wait(2.0)
        if reader is not None:
            reader.close()

    def _connect(self, positions: dict[int, int], ends: dict[int, int]) -> TopicReader:
        """A reader from ``positions`` (the beginning at first); ``ends`` filled with the
        log ends the lock history is read up to."""
        reader = topic_reader(self._settings, "control", timeout=5.0)
        try:
            for p in reader.partitions(self._topic):
                low, high = reader.watermarks(self._topic, p)
                positions[p] = max(positions.get(p, low), low)
                ends[p] = high
            reader.assign(self._topic, positions)
        except BrokerError:
            reader.close()
            raise
        self._unread = f"reading {self._topic} to its end"
        return reader

    def _take(self, messages: Sequence[Message], positions: dict[int, int]) -> None:
        for message in messages:
            self._count += 1
            partition, offset = message.partition(), message.offset()
            if partition is not None and offset is not None:
                positions[partition] = offset + 1
            key = message.key() or b""
            if key.startswith(control.GATEWAY_PREFIXES):
                continue  # gateways' answers and review requests, for the auditors
            where = f"partition {partition} offset {offset}"
            self._handle(message.value(), key, f"{self._topic} {where}")

    def _save(self) -> None:
        try:
            self._locks.save()
        except OSError as exc:
            log.warning("cannot save the operator locks in the state directory: %s", exc)

    def _broker_error(self, exc: BrokerError) -> None:
        if self._read.is_set():
            log.warning("control topic: %s; trying again", exc)
            return
        self._unread = f"cannot read {self._topic}: {exc}"
        log.warning(
            "control topic: %s; trying again (logins are refused until the operator "
            "locks on it are read)",
            exc,
        )

    def _handle(self, value: bytes | None, key: bytes, where: str) -> None:
        try:
            message = control.decode(value, self._trusted, key)
        except control.ControlError as exc:
            log.warning("refused a control message at %s: %s", where, exc)
            return
        fresh = control.fresh(message, control.now_ns())
        if isinstance(message, control.Lock | control.Unlock):
            self._lock_message(message, fresh, where)
        elif isinstance(message, control.Presence):
            self._call(lambda: self.moderation.presence(message, where))
        elif isinstance(message, control.ReviewAnswer):
            if fresh:
                self._call(lambda: self.reviews.answered(message))
            else:
                log.info(
                    "ignored a control message at %s: an answer to review %s signed more "
                    "than %d s from now: history, not an answer",
                    where,
                    message.review,
                    control.FRESH_S,
                )
        elif isinstance(message, control.Terminate):
            if fresh:
                self._call(lambda: self._terminate(message))
            else:
                log.info(
                    "ignored a control message at %s: a terminate of session %s signed "
                    "%.0f s from now (more than %d s): history, not a request",
                    where,
                    message.session,
                    abs(control.now_ns() - message.at) / 1e9,
                    control.FRESH_S,
                )

    def _lock_message(
        self, message: control.Lock | control.Unlock, fresh: bool, where: str
    ) -> None:
        stale = self._locks.apply(message)
        if stale is not None:
            log.warning(
                "ignored a control message at %s: %s of operator %s signed at %d, not "
                "after the one in force (signed at %d): a copy re-sent or read out of order",
                where,
                message.__struct_config__.tag,
                message.operator,
                message.at,
                stale.newest,
            )
            return
        if not fresh:
            return  # history: in force, but nothing to end or answer now
        if isinstance(message, control.Lock):
            self._call(lambda: self._locked(message))
        else:
            self._answer(message.request_id, "unlocked", f"operator {message.operator}")

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
            for relay in self._sessions.relays_of(request.operator):
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
        problem = self.send(result)
        if problem is not None:
            log.warning("cannot answer control request %s: %s", request_id, problem)

    def send(self, message: control.Message) -> str | None:
        """Publish ``message`` signed by this gateway; why not, if it cannot be handed
        to the producer. A review request that is not delivered ends its review."""

        def delivered(error: DeliveryError | None) -> None:
            if error is None:
                return
            log.warning("control message %s not delivered: %s", message.request_id, error)
            if isinstance(message, control.ReviewRequest):
                why = str(error)
                self._call(lambda: self.reviews.undelivered(message.request_id, why))

        try:
            self._producer.produce(
                self._topic,
                control.key_of(message),
                control.encode(message, self._signer),
                delivered,
            )
            self._producer.poll(0)
        except BrokerError as exc:
            return str(exc)
        return None


def _uuid(text: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(text)
    except ValueError:
        return None
