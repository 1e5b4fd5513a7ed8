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
import socket
import sys
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.engine import Connection
from sqlalchemy.exc import SQLAlchemyError

from sshtrail import control
from sshtrail.accesschain import AccessChain, Head, decode_head
from sshtrail.accessrows import Row, raw_select, read
from sshtrail.db import existing_engine
from sshtrail.errors import BrokerError, NotSetUp, TopicMissing
from sshtrail.kafka.adapters import KafkaProducer, topic_reader
from sshtrail.kafka.config import QUIET, client_config
from sshtrail.kafka.ports import DeliveryError
from sshtrail.kafka.reading import whole_topic
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
    "revoke",
    "sessions",
    "view",
    "active",
    "replay",
    "search",
    "export",
    "export-file",
    "watch",
    "terminate",
    "lock",
    "unlock",
    "reviews",
    "approve",
    "deny",
    "alerts",
    "moderation",
    "moderate",
    "moderate-end",
    "locks",
    "lag",
    "access-log",
    "denied",
    "retention",
    "hold",
    "hold-release",
    "delete",
    "deletions",
)
DETAIL_MAX = 2048


@dataclass(frozen=True, slots=True)
class Entry:
    at: dt.datetime | None
    auditor: str
    action: str
    address: str
    session_id: uuid.UUID | None
    detail: str
    #: What a database writer made unreadable in the row (sshtrail/accessrows.py).
    unreadable: str = ""


_FIELDS = ("at", "auditor", "action", "address", "session_id", "detail")


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
        for message in whole_topic(reader, topic, timeout):
            try:
                heads.append(decode_head(message.value(), trusted))
            except ValueError as exc:
                where = f"partition {message.partition()} offset {message.offset()}"
                refused.append(f"{where}: {exc}")
    except TopicMissing as exc:
        raise TopicMissing(f"{exc} (sshtrail topics creates it)") from None
    except BrokerError as exc:
        raise BrokerError(f"cannot read the access log's heads from {topic}: {exc}") from None
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
    query = raw_select()
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
    return [_entry(row) for row in read(conn, query.limit(limit).offset(offset))]


def _entry(row: Row) -> Entry:
    """A row as listed; a value a database writer made unreadable is shown as text."""
    if not row.unreadable:
        return Entry(*(row[name] for name in _FIELDS))
    at, session = row["at"], row["session_id"]
    return Entry(
        at=at if isinstance(at, dt.datetime) else None,
        auditor=_text(row["auditor"]),
        action=_text(row["action"]),
        address=_text(row["address"]),
        session_id=session if isinstance(session, uuid.UUID) else None,
        detail=_text(row["detail"]),
        unreadable=row.unreadable,
    )


def _text(value: object) -> str:
    return value if isinstance(value, str) else repr(value)


def as_json(entry: Entry) -> dict[str, Any]:
    return {
        "at": entry.at.isoformat() if entry.at is not None else None,
        "auditor": entry.auditor,
        "action": entry.action,
        "address": entry.address,
        "session": str(entry.session_id) if entry.session_id else None,
        "detail": entry.detail,
        "unreadable": entry.unreadable or None,
    }


def record_from_cli(
    settings: Settings, who: str, action: str, session_id: uuid.UUID | None, detail: str
) -> None:
    """A request made from a shell, in the access log beside the web console's (address
    ``cli:HOST``); a log that cannot be written is said on stderr, and the request stands."""
    try:
        engine = existing_engine(settings.database_url, "store")
        log = chain(settings, engine)
        try:
            record(
                log,
                who,
                action,
                f"cli:{socket.gethostname()}",
                session_id=session_id,
                detail=detail,
            )
        finally:
            log.close()
            engine.dispose()
    except (NotSetUp, SQLAlchemyError) as exc:
        print(f"sshtrail: the request is not in the access log: {exc}", file=sys.stderr)
