"""The Active sessions page: the sessions of the auditor's scope that are open now, each
with its operator, target, kind, start, duration, bytes so far and flags, a Watch link
to its live view and (``terminate`` right) a Terminate form.

"Open now" is the store's word: sessions whose start it has and whose end it has not
(``status = active``), as the session page decides whether to show a live view. The
page itself holds only the table; ``active.js`` fills it from ``/active.json`` at once
and every two seconds, updating rows in place so a reason half typed in a Terminate
form survives the refresh. Terminate posts to the session's own terminate path
(``/sessions/{id}/terminate``, CSRF token, reason, right and scope checked there).

Opening the page is in the access log (``active``, with its filters); the JSON it polls
is not (it is the page already logged), as with the alerts page's rows.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from consumer.web import filters
from consumer.web.auth import Auditor
from consumer.web.pages.base import Page, log_detail
from sshtrail import queries
from sshtrail.describe import request_text
from sshtrail.states import SessionStatus, split_flags

#: Open sessions listed at most, newest first.
ACTIVE_SHOWN = 500
#: The query parameters taken: the filters, and the sort of the sessions page.
PARAMS = ("operator", "target", "sort")
#: The sorts offered (those of the sessions page that mean something for open sessions).
SORTS = ("started", "operator", "target")
#: The longest filter value taken: operator and target names are far shorter.
VALUE_MAX = 256


class ActivePages(Page):
    """``/active`` (the page) and ``/active.json`` (what it polls)."""

    def active(self, request: Request) -> Response:
        params = read_filters(request)
        self.console.log(request, "active", detail=log_detail(params, 1))
        return self.console.render(
            request,
            "active.html",
            {"params": params, "sorts": SORTS, "shown": ACTIVE_SHOWN},
        )

    def active_json(self, request: Request) -> Response:
        params = read_filters(request)
        auditor: Auditor = request.state.auditor
        wanted = queries.SessionFilter(
            operator=params["operator"] or None,
            target=params["target"] or None,
            status=SessionStatus.ACTIVE,
            limit=ACTIVE_SHOWN + 1,
            scope=auditor.scope,
            sort=params["sort"] or "started",
            ascending=params["sort"] in ("operator", "target"),
        )
        with self._store() as conn:
            rows = queries.list_sessions(conn, wanted)
        now = dt.datetime.now(dt.UTC)
        return JSONResponse(
            {
                "now": now.isoformat(),
                "may_terminate": auditor.may_terminate,
                "sessions": [active_row(row, now, auditor) for row in rows[:ACTIVE_SHOWN]],
                "more": len(rows) > ACTIVE_SHOWN,
            }
        )


def read_filters(request: Request) -> dict[str, str]:
    """The page's filters, or a 400 naming what is wrong: an unknown parameter, a value
    given twice or too long, a sort not offered."""
    problems = [
        f"{name}: not a parameter of this page"
        for name in request.query_params
        if name not in PARAMS
    ]
    params: dict[str, str] = {}
    for name in PARAMS:
        values = request.query_params.getlist(name)
        if len(values) > 1:
            problems.append(f"{name}: given more than once")
        value = values[0].strip() if values else ""
        if len(value) > VALUE_MAX or not value.isprintable():
            problems.append(f"{name}: at most {VALUE_MAX} printable characters")
        params[name] = value
    if params["sort"] and params["sort"] not in SORTS:
        problems.append(f"sort: one of {', '.join(SORTS)}")
    if problems:
        raise HTTPException(400, "; ".join(problems))
    return params


def active_row(row: dict[str, Any], now: dt.datetime, auditor: Auditor) -> dict[str, Any]:
    """An open session as the page shows it. Text from the session is sent as the console
    shows it (control characters made visible); the page puts it in as text, never HTML."""
    started: dt.datetime | None = row["started_at"]
    hex_id = row["id"].hex
    return {
        "id": hex_id,
        "short": hex_id[: queries.MIN_PREFIX],
        "operator": filters.shown(row["operator"]),
        "target": filters.shown(row["target"]),
        "kind": request_text(row, 60),
        "started_at": started.isoformat() if started is not None else None,
        "duration_s": max(0.0, (now - started).total_seconds()) if started is not None else None,
        "bytes_in": row["bytes_in"],
        "bytes_out": row["bytes_out"],
        "flags": split_flags(row["flags"]),
        "watch": f"/sessions/{hex_id}",
        "terminate": f"/sessions/{hex_id}/terminate" if auditor.may_terminate else None,
    }
