"""Alerts out of the store: to the alerts topic and the webhooks, on a thread of their own.

The alert group writes alerts to the store's ``alerts`` table in its batch
(:mod:`consumer.alerter`); this thread sends what is stored and not sent yet, and marks
it sent, so the group never waits on a broker or a web server it does not read from:

* the **topic** (``alerts.topic``): each alert as JSON, keyed by its session id, marked
  ``published`` once the broker acknowledged it;
* each **webhook** (``alerts.webhook``, ``alerts.webhooks``): POSTed as JSON (or as a
  Slack-compatible ``{"text": ...}``), marked ``delivered`` once every URL answered 2xx.
  A URL that fails is tried again with back-off (1 s doubling to 60 s), the others go
  on (up to :data:`MAX_PAGES` batches ahead of it); an alert a URL took is not sent to
  it again while this process lives. A redirect is a failure (it would drop the body).

On the topic each alert is once: before it sends anything, a member reads back the
alerts its predecessor published and did not live to mark (:mod:`consumer.alertrecheck`).
A webhook cannot be asked what it took, so it is sent alerts at least once: a member
stopped between a 2xx and the mark posts that alert again when it starts. Each POST
carries the alert's ``id`` in its body and as an ``Idempotency-Key`` header, so a
receiver can tell the copies apart.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import logging
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Engine, select, update

from consumer.alertrecheck import recheck
from sshtrail.errors import BrokerError, SshtrailError
from sshtrail.kafka.adapters import KafkaProducer
from sshtrail.kafka.config import client_config
from sshtrail.kafka.ports import DeliveryError
from sshtrail.settings import Settings
from sshtrail.tables import ALERTS

log = logging.getLogger(__name__)

#: Alerts taken from the table at a time ...
BATCH = 200
#: ... and pages of them looked through for those a webhook has not taken yet.
MAX_PAGES = 50
#: A webhook's back-off after a failure: from this, doubling, to the next.
BACKOFF_FIRST_S, BACKOFF_MAX_S = 1.0, 60.0
#: How long one webhook request may take.
WEBHOOK_TIMEOUT_S = 5.0


class AlertOutbox:
    """Sends stored alerts to the topic and the webhooks; :meth:`wake` after new ones."""

    def __init__(self, settings: Settings, engine: Engine) -> None:
        alerts = settings.alerts
        self._settings = settings
        self._engine = engine
        self._topic = alerts.topic
        self._console = alerts.console_url.rstrip("/")
        self._format = alerts.webhook_format
        self._urls = [url for url in [alerts.webhook, *alerts.webhooks] if url]
        self._producer = KafkaProducer(
            client_config(
                settings,
                **{"client.id": f"sshtrail-alerts-{settings.instance}", "enable.idempotence": True},
            )
        )
        self._wake = threading.Event()
        self._stop = threading.Event()
        #: Alerts handed to the producer and not yet acknowledged or refused; those
        #: acknowledged and not yet marked.
        self._flying: set[str] = set()
        self._acked: list[str] = []
        self._taken: dict[str, set[str]] = {url: set() for url in self._urls}
        self._retry_at: dict[str, float] = dict.fromkeys(self._urls, 0.0)
        self._backoff: dict[str, float] = dict.fromkeys(self._urls, BACKOFF_FIRST_S)
        self._thread = threading.Thread(target=self._run, name="alert-outbox", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def wake(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=15)
        self._producer.flush(5.0)

    def _run(self) -> None:
        rechecked = False  # nothing is published before the topic was read back
        while not self._stop.is_set():
            self._wake.wait(1.0)
            self._wake.clear()
            try:
                rechecked = rechecked or self._recheck()
                while (rechecked and self._publish()) or self._deliver():
                    if self._stop.is_set():
                        return
            except Exception:  # the database away, a bug: say so, try again later
                log.exception("alert outbox: sending failed; trying again in a second")

    # -- the topic -------------------------------------------------------------------------

    def _recheck(self) -> bool:
        """Read back what the member before published; whether that is done (the topic
        waits for it; the webhooks do not)."""
        try:
            recheck(self._settings, self._engine, self._topic)
        except BrokerError as exc:
            log.warning("alerts topic %s: cannot read it back yet: %s", self._topic, exc)
            return False
        return True

    def _publish(self) -> bool:
        """Send a batch not yet published (less what is still on its way to the broker);
        whether a full batch was acknowledged (more may wait)."""
        rows = [row for row in self._pending(ALERTS.c.published) if row["id"] not in self._flying]
        try:
            for row in rows:
                alert_id = row["id"]
                self._producer.produce(
                    self._topic,
                    str(row["session_id"]).encode(),
                    json.dumps(self.document(row)).encode(),
                    functools.partial(self._delivered, alert_id),
                )
                self._flying.add(alert_id)  # handed over: not sent again until answered
        except (BrokerError, SshtrailError) as exc:  # a full queue, a message too large
            log.warning("alerts topic %s: %s; trying again", self._topic, exc)
        left = self._producer.flush(10.0)
        if left:
            log.warning(
                "alerts topic %s: %d alerts not acknowledged within 10 s; waiting for them",
                self._topic,
                left,
            )
        acked, self._acked = self._acked, []  # late acknowledgements included
        if acked:
            self._mark(ALERTS.c.published, acked)
        return len(acked) >= BATCH

    def _delivered(self, alert_id: str, error: DeliveryError | None) -> None:
        self._flying.discard(alert_id)  # acknowledged, or to be sent again
        if error is None:
            self._acked.append(alert_id)
        else:
            log.warning("alerts topic %s: alert %s not delivered: %s", self._topic, alert_id, error)

    # -- the webhooks ----------------------------------------------------------------------

    def _deliver(self) -> bool:
        if not self._urls:
            return False
        rows: dict[str, dict[str, Any]] = {}
        now = time.monotonic()
        for url in self._urls:
            if now < self._retry_at[url]:
                continue
            waiting = self._not_taken(url)
            rows.update((row["id"], row) for row in waiting)
            for row in waiting:
                if not self._post(url, row):
                    self._retry_at[url] = time.monotonic() + self._backoff[url]
                    self._backoff[url] = min(self._backoff[url] * 2, BACKOFF_MAX_S)
                    break
                self._taken[url].add(row["id"])
                self._backoff[url] = BACKOFF_FIRST_S
        done = [alert for alert in rows if all(alert in self._taken[u] for u in self._urls)]
        if done:
            self._mark(ALERTS.c.delivered, done)
            for taken in self._taken.values():
                taken.difference_update(done)
        return len(done) == BATCH

    def _post(self, url: str, row: dict[str, Any]) -> bool:
        document = self.document(row)
        body = {"text": _slack_text(document)} if self._format == "slack" else document
        try:
            request = urllib.request.Request(  # noqa: S310 -- the administrator's URL
                url,
                data=json.dumps(body).encode(),
                headers={
                    "Content-Type": "application/json",
                    "User-Agent": "sshtrail-alerts",
                    "Idempotency-Key": row["id"],
                },
                method="POST",
            )
            with _NO_REDIRECTS.open(request, timeout=WEBHOOK_TIMEOUT_S) as answer:
                status = int(answer.status)
        except (urllib.error.URLError, OSError, ValueError) as exc:
            log.warning("webhook %s: %s; trying again with back-off", _shown(url), exc)
            return False
        if not 200 <= status < 300:
            log.warning("webhook %s answered %d; trying again", _shown(url), status)
            return False
        return True

    # -- the table ---------------------------------------------------------------------------

    def _not_taken(self, url: str) -> list[dict[str, Any]]:
        """Up to a batch of undelivered alerts ``url`` has not taken: a webhook that is
        down holds back only its own (the others' are taken, not yet marked)."""
        taken = self._taken[url]
        found: list[dict[str, Any]] = []
        with self._engine.connect() as conn:
            for page in range(MAX_PAGES):
                rows = conn.execute(
                    select(ALERTS)
                    .where(ALERTS.c.delivered.is_(False))
                    .order_by(ALERTS.c.at, ALERTS.c.id)
                    .offset(page * BATCH)
                    .limit(BATCH)
                ).mappings()
                batch = [dict(row) for row in rows]
                found += [row for row in batch if row["id"] not in taken][: BATCH - len(found)]
                if len(batch) < BATCH or len(found) >= BATCH:
                    break
        return found

    def _pending(self, flag: Any) -> list[dict[str, Any]]:
        with self._engine.connect() as conn:
            found = conn.execute(
                select(ALERTS).where(flag.is_(False)).order_by(ALERTS.c.at).limit(BATCH)
            )
            return [dict(row) for row in found.mappings()]

    def _mark(self, flag: Any, ids: Sequence[str]) -> None:
        with self._engine.begin() as conn:
            conn.execute(update(ALERTS).where(ALERTS.c.id.in_(ids)).values({flag.name: True}))

    def document(self, row: dict[str, Any]) -> dict[str, Any]:
        return alert_document(row, self._console)


def alert_document(row: dict[str, Any], console: str) -> dict[str, Any]:
    """An alert as it is published and listed: the rule that raised it (with its
    author: the Detection Rule License asks for it), the session, the command, the
    event that matched and a link to the moment in the console."""
    at: dt.datetime = row["at"]
    seconds = row["t"] / 1e9
    session = row["session_id"]
    return {
        "id": row["id"],
        "rule": {
            "id": row["rule_id"],
            "title": row["title"],
            "level": row["level"],
            "author": row["author"],
            "tags": list(row["tags"] or []),
        },
        "session": str(session),
        "operator": row["operator"],
        "target": row["target"],
        "time": at.astimezone(dt.UTC).isoformat(),
        "t": round(seconds, 3),
        "command": row["command"],
        "event": row["event"],
        "link": f"{console}/sessions/{session.hex}?t={seconds:.1f}",
    }


def _slack_text(document: dict[str, Any]) -> str:
    rule = document["rule"]
    return (
        f"[{rule['level']}] {rule['title']} -- {document['operator']} on "
        f"{document['target']}: `{document['command'][:300]}` <{document['link']}|session> "
        f"(rule {rule['id']} by {rule['author']})"
    )


def _shown(url: str) -> str:
    """A URL for the log, without what may be a secret in it: a webhook's path often is
    its token (``/services/T/B/SECRET``), so only the scheme and host are shown."""
    try:
        parsed = urllib.parse.urlsplit(url)
        return f"{parsed.scheme}://{parsed.hostname or '?'}:{parsed.port or ''}/..."
    except ValueError:
        return "(a URL that cannot be read)"


class _Refused(urllib.request.HTTPRedirectHandler):
    """A webhook that answers with a redirect has not taken the alert: urllib would
    follow a 302 with a GET and drop the body."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_NO_REDIRECTS = urllib.request.build_opener(_Refused)
