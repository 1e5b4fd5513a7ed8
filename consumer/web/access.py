"""The access log: every look an auditor took, in the store (``access_log``, migration 0005).

Written before the answer is sent: a view that could not be logged is not
shown (the console answers 503), so the log never misses what was seen.
Each process writes its rows as one hash chain and publishes the chain's
head, signed with the control key, on ``web.access_log_topic``
(:mod:`sshtrail.accesschain`; :func:`chain`), so that rows a database writer
deletes, changes or adds are found (``sshtrail access-log --verify``).
"""

from __future__ import annotations

import datetime as dt
import logging
import time
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, select
from sqlalchemy.engine import Connection

from sshtrail import control
from sshtrail.accesschain import AccessChain, Head, decode_head
from sshtrail.errors import BrokerError
from sshtrail.kafka.adapters import KafkaProducer, topic_reader
from sshtrail.kafka.config import QUIET, client_config
from sshtrail.kafka.ports import DeliveryError
from sshtrail.settings import Settings
from sshtrail.tables import ACCESS_LOG

log = logging.getLogger(__name__)
#: How long closing waits for the last heads to be acknowledged.
CLOSE_WAIT_S = 5.0

#: The actions written, in the order docs/operations.md explains them.
ACTIONS = (
    "login",
    "login-failed",
    "login-refused",
    "logout",
    "sessions",
    "view",
    "replay",
    "search",
    "export",
    "watch",
    "terminate",
    "lock",
    "unlock",
    "lag",
    "access-log",
    "denied",
)
DETAIL_MAX = 2048


@dataclass(frozen=True, slots=True)
class Entry:
    at: dt.datetime
    auditor: str
    action: str
    address: str
    session_id: uuid.UUID | None
    detail: str


class KafkaHeads:
    """Heads to ``web.access_log_topic``, keyed by chain; the producer is made at the
    first head, so a process that logs nothing never connects."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._producer: KafkaProducer | None = None

    def publish(self, key: bytes, value: bytes) -> None:
        if self._producer is None:
            name = f"sshtrail-access-log-{self._settings.instance}"
            config = client_config(self._settings, **{"client.id": name, **QUIET})
            self._producer = KafkaProducer(config)
        topic = self._settings.web.access_log_topic
        self._producer.produce(topic, key, value, _delivered)
        self._producer.poll(0)

    def close(self) -> None:
        if self._producer is not None and self._producer.flush(CLOSE_WAIT_S):
            log.error(
                "the access log's last head did not reach %s within %.0f s: "
                "access-log --verify will call the rows after the last head unpublished",
                self._settings.web.access_log_topic,
                CLOSE_WAIT_S,
            )


def _delivered(error: DeliveryError | None) -> None:
    if error is not None:
        log.error("an access log head was not published: %s", error)


def chain(settings: Settings, engine: Engine) -> AccessChain:
    """The access log chain of this process, its heads signed with the control key."""
    return AccessChain(engine, KafkaHeads(settings), control.signing_key(settings))


def record(
    chain: AccessChain,
    auditor: str,
    action: str,
    address: str,
    *,
    session_id: uuid.UUID | None = None,
    detail: str = "",
) -> None:
    assert action in ACTIONS, action
    chain.append(
        {
            "at": dt.datetime.now(dt.UTC),
            "auditor": auditor[:128],
            "action": action,
            "address": address[:64],
            "session_id": session_id,
            "detail": detail[:DETAIL_MAX],
        }
    )


def published_heads(settings: Settings, refused: list[str], timeout: float = 30.0) -> list[Head]:
    """Every head on ``web.access_log_topic`` a trusted control key signed (the control
    requests' ``control.trusted_keys``); what else is there goes to ``refused``."""
    trusted = control.trusted_keys(settings)
    topic = settings.web.access_log_topic
    reader = topic_reader(settings, "access-log-verify", timeout=timeout)
    heads: list[Head] = []
    try:
        try:
            partitions = reader.partitions(topic)
        except BrokerError as exc:
            raise BrokerError(
                f"cannot read the access log's heads from {topic}: {exc} (sshtrail topics "
                "creates it)"
            ) from None
        for partition in partitions:
            low, high = reader.watermarks(topic, partition)
            if low >= high:
                continue
            reader.assign(topic, {partition: low})
            position, quiet_since = low, time.monotonic()
            while position < high:
                # Short waits: compaction leaves fewer messages than offsets, and a
                # consume() waits its whole timeout for as many as it asks for.
                messages = reader.consume(min(1000, high - position), 0.5)
                if not messages:
                    if time.monotonic() - quiet_since > timeout:
                        raise BrokerError(
                            f"partition {partition} of {topic} gave nothing from offset "
                            f"{position} in {timeout:.0f} s"
                        )
                    continue
                quiet_since = time.monotonic()
                for message in messages:
                    position = max(position, (message.offset() or 0) + 1)
                    try:
                        heads.append(decode_head(message.value(), trusted))
                    except ValueError as exc:
                        refused.append(f"partition {partition} offset {message.offset()}: {exc}")
    finally:
        reader.close()
    return heads


def entries(
    conn: Connection,
    *,
    auditor: str | None = None,
    session_id: uuid.UUID | None = None,
    action: str | None = None,
    since: dt.datetime | None = None,
    limit: int = 100,
    offset: int = 0,
) -> list[Entry]:
    """Newest first."""
    query = select(
        ACCESS_LOG.c.at,
        ACCESS_LOG.c.auditor,
        ACCESS_LOG.c.action,
        ACCESS_LOG.c.address,
        ACCESS_LOG.c.session_id,
        ACCESS_LOG.c.detail,
    )
    conditions: list[Any] = []
    if auditor is not None:
        conditions.append(ACCESS_LOG.c.auditor == auditor)
    if session_id is not None:
        conditions.append(ACCESS_LOG.c.session_id == session_id)
    if action is not None:
        conditions.append(ACCESS_LOG.c.action == action)
    if since is not None:
        conditions.append(ACCESS_LOG.c.at >= since)
    query = query.where(*conditions).order_by(ACCESS_LOG.c.at.desc(), ACCESS_LOG.c.id.desc())
    return [Entry(*row) for row in conn.execute(query.limit(limit).offset(offset))]


def as_json(entry: Entry) -> dict[str, Any]:
    return {
        "at": entry.at.isoformat(),
        "auditor": entry.auditor,
        "action": entry.action,
        "address": entry.address,
        "session": str(entry.session_id) if entry.session_id else None,
        "detail": entry.detail,
    }
