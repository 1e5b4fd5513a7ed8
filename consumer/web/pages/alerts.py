"""The alerts page: what Sigma rules raised on the commands of sessions in the auditor's
scope, newest first, each linked to its session's player at the moment of its command.

The filters are those of ``sshtrail alerts`` and the query is the same one
(:func:`sshtrail.alertqueries.list_alerts`), with the auditor's scope added. The list
refreshes itself every two seconds (``console.js``, ``?part=rows``). Opening the page is
in the access log (``alerts``, with its filters); the self-refreshing list is not (it is
the page already logged), as on the reviews page.
"""

from __future__ import annotations

import uuid
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from consumer.web import filters
from consumer.web.auth import Auditor
from consumer.web.pages.base import Page, check_one_of, log_detail, read_moment, read_params
from sshtrail import queries
from sshtrail.alertqueries import LEVELS, AlertFilter, list_alerts

#: Alerts the page lists at most, newest first.
ALERTS_SHOWN = 200
FILTERS = ("since", "level", "rule", "operator", "target", "session")


class AlertPages(Page):
    """``/alerts``, whole or (``?part=rows``) its list alone."""

    def alerts(self, request: Request) -> Response:
        auditor: Auditor = request.state.auditor
        rows_only = request.query_params.get("part") == "rows"
        params = read_params(request, *FILTERS)
        params["level"] = params["level"].strip().lower()
        problems: list[str] = []
        since = read_moment(params["since"], "since", problems)
        check_one_of("level", params["level"], LEVELS, problems)
        session_id = _session_id(params["session"], problems)
        if not rows_only:
            self.console.log(request, "alerts", detail=log_detail(params, 1))
        rows: list[dict[str, Any]] = []
        if not problems:
            wanted = AlertFilter(
                since=since,
                level=params["level"] or None,
                rule=params["rule"].strip() or None,
                operator=params["operator"].strip() or None,
                target=params["target"].strip() or None,
                session_id=session_id,
                limit=ALERTS_SHOWN,
                scope=auditor.scope,
            )
            with self._store() as conn:
                rows = [alert_row(row) for row in list_alerts(conn, wanted)]
        return self.console.render(
            request,
            "alert_rows.html" if rows_only else "alerts.html",
            {
                "rows": rows,
                "params": params,
                "levels": LEVELS,
                "shown": ALERTS_SHOWN,
                "part": rows_only,
                "problems": problems,
            },
            400 if problems else 200,
        )


def alert_row(row: dict[str, Any]) -> dict[str, Any]:
    """An alert as the console shows it (the alerts page, a session page's markers)."""
    session: uuid.UUID = row["session_id"]
    return {
        "id": row["id"],
        "at": row["at"],
        "t": row["t"] / 1e9,
        "level": row["level"] or "-",
        "title": filters.shown(row["title"]),
        "rule_id": filters.shown(row["rule_id"]),
        "operator": filters.shown(row["operator"]),
        "target": filters.shown(row["target"]),
        "session": session.hex,
        "short": session.hex[: queries.MIN_PREFIX],
        "command": filters.shown(row["command"]),
    }


def _session_id(text: str, problems: list[str]) -> uuid.UUID | None:
    """A session's whole id (as its page's address has it): a prefix is not looked up
    here, as telling which sessions share it would name sessions out of scope."""
    if not text.strip():
        return None
    try:
        return uuid.UUID(text.strip())
    except ValueError:
        problems.append("session: a session's whole id (32 hex digits, as in its address)")
        return None
