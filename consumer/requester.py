"""Asking the gateways: terminate a session, lock or unlock an operator, and hear back.

Used by ``sshtrail terminate`` / ``lock`` / ``unlock`` and the web console. A
request is signed with the control key and published on the control topic;
then the answers of the gateways (signed by their recording keys, checked
against the trusted gateway keys) are read until one names the request or
the wait is over. Whether a session exists, and whether it already ended, is
the store's to say, before anything is sent (:func:`session_state`).
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass

from sqlalchemy.engine import Connection

from sshtrail import control, queries
from sshtrail.errors import BrokerError
from sshtrail.kafka.adapters import KafkaProducer, topic_reader
from sshtrail.kafka.config import client_config
from sshtrail.kafka.ports import DeliveryError
from sshtrail.settings import Settings
from sshtrail.verification import known_gateway_keys

#: How long a requester waits for a gateway's answer by default.
WAIT_S = 10.0


@dataclass(frozen=True, slots=True)
class SessionState:
    session_id: uuid.UUID
    operator: str | None
    target: str | None
    active: bool
    end_reason: str | None


def session_state(conn: Connection, prefix: str) -> SessionState:
    """The session ``prefix`` names (:class:`~sshtrail.errors.NotFound` if none) and
    whether it is still active, as the store knows it."""
    session_id = queries.resolve(conn, prefix)
    row = queries.session(conn, session_id)
    return SessionState(
        session_id,
        row["operator"],
        row["target"],
        row["status"] == "active",
        row["end_reason"],
    )


def ask(
    settings: Settings, request: control.Request, wait_s: float = WAIT_S
) -> list[control.Result]:
    """Publish ``request``; the answers that name it within ``wait_s`` (for a
    termination, the first is the only one: one gateway holds a session), each signed
    by a gateway these settings trust (``control.gateway_keys``, the gateway's own key).
    Every gateway answers a lock; only the one holding it answers anything else."""
    gateway_keys = control.gateway_keys(settings, known_gateway_keys(settings))
    topic = settings.control.topic
    reader = topic_reader(settings, "control-answer", timeout=5.0)
    try:
        partitions = reader.partitions(topic)
        reader.assign(topic, {p: reader.watermarks(topic, p)[1] for p in partitions})
        _publish(settings, request)
        answers: list[control.Result] = []
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            for message in reader.consume(100, 0.1):
                try:
                    found = control.decode(message.value(), gateway_keys, message.key())
                except control.ControlError:
                    continue  # requests (signed by the control key), or noise
                if isinstance(found, control.Result) and found.request_id == request.request_id:
                    answers.append(found)
            if answers and not isinstance(request, control.Lock | control.Unlock):
                break  # one gateway holds a session, or a review: its answer is the one
        return answers
    finally:
        reader.close()


def _publish(settings: Settings, request: control.Request) -> None:
    failures: list[DeliveryError] = []
    producer = KafkaProducer(
        client_config(settings, **{"client.id": f"sshtrail-control-{settings.instance}"})
    )
    producer.produce(
        settings.control.topic,
        control.key_of(request),
        control.encode(request, control.signing_key(settings)),
        lambda error: failures.append(error) if error is not None else None,
    )
    if producer.flush(10.0) or failures:
        reason = failures[0] if failures else "not acknowledged within 10 s"
        raise BrokerError(f"cannot send the request to {settings.control.topic}: {reason}")
