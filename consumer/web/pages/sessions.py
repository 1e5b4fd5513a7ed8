"""The sessions list and a session's page: its fields, verdict, alerts, commands,
transfers, player, live view and terminate button."""

from __future__ import annotations

import json
import uuid
from typing import Any

from markupsafe import Markup
from starlette.exceptions import HTTPException
from starlette.requests import HTTPConnection, Request
from starlette.responses import Response

from consumer.requester import ask
from consumer.web import filters
from consumer.web.auth import Auditor
from consumer.web.pages import files
from consumer.web.pages.alerts import alert_row
from consumer.web.pages.base import (
    Page,
    check_one_of,
    log_detail,
    read_choice,
    read_moment,
    read_number,
    read_params,
    read_seconds,
)
from consumer.web.pages.downloads import EXPORTS
from sshtrail import control, interrupted, pieces, promptflag, queries, transferqueries
from sshtrail.alertqueries import AlertFilter, list_alerts
from sshtrail.chain import Status
from sshtrail.describe import duration_text, exit_text, request_text, session_fields, signer_text
from sshtrail.errors import BrokerError
from sshtrail.sessionrequests import described, forwarded, read_requests
from sshtrail.states import FLAG_CHOICES, PolicyMark, SessionStatus, chosen_flag, split_flags
from sshtrail.verification import known_gateway_keys, session_verdicts

#: The statuses the sessions page filters by: the store's, and ``tampered`` (a
#: verification verdict, checked for the sessions whose stored word is not "ok").
STATUSES = (*(s.value for s in SessionStatus), "tampered")
#: Sessions looked through for ``tampered`` at most.
TAMPERED_SCAN = 5000
#: Operations of one session the session page lists at most.
TRANSFERS_SHOWN = 500
#: Alerts of one session the session page marks at most (the newest).
ALERTS_SHOWN = 500
SPEEDS = ("0.5", "1", "2", "4", "8")
IDLE_LIMITS = ("", "1", "2", "5", "30")
#: The command-policy marks the sessions page filters by (docs/policy.md).
POLICY_MARKS = tuple(mark.value for mark in PolicyMark)


class SessionPages(Page):
    """The sessions list and one session's page, and what its live view and terminate ask."""

    def sessions(self, request: Request) -> Response:
        auditor: Auditor = request.state.auditor
        params = read_params(
            request,
            "operator",
            "target",
            "status",
            "policy",
            "flag",
            "since",
            "until",
            "sort",
            "order",
        )
        page = read_number(request.query_params.get("page"), 1, 1, 100_000)
        size = self.console.settings.web.page_size
        problems: list[str] = []
        notes: list[str] = []
        since = read_moment(params["since"], "since", problems)
        until = read_moment(params["until"], "until", problems)
        status = params["status"]
        check_one_of("status", status, STATUSES, problems)
        check_one_of("policy", params["policy"], POLICY_MARKS, problems)
        check_one_of("flag", params["flag"], FLAG_CHOICES, problems)
        sort = params["sort"] or "started"
        check_one_of("sort", sort, tuple(queries.SORTS), problems)
        rows: list[dict[str, Any]] = []
        verdicts: dict[uuid.UUID, Any] = {}
        more = False
        if not problems:
            tampered = status == "tampered"
            wanted = queries.SessionFilter(
                operator=params["operator"] or None,
                target=params["target"] or None,
                status=None if tampered or not status else SessionStatus(status),
                since=since,
                until=until,
                limit=TAMPERED_SCAN if tampered else size + 1,
                offset=0 if tampered else (page - 1) * size,
                scope=auditor.scope,
                sort=sort,
                ascending=params["order"] == "asc",
                unverified=tampered,
                policy=PolicyMark(params["policy"]) if params["policy"] else None,
                flag=chosen_flag(params["flag"]),
            )
            keys = known_gateway_keys(self.console.settings)
            with self._store() as conn:
                listed = promptflag.list_sessions(
                    conn, wanted, lambda: self.console.search_engine().connect()
                )
                rows = listed.rows
                verdicts = session_verdicts(conn, rows, keys)
            if listed.unknown is not None and wanted.flag is not None:
                notes.append(
                    "The search index cannot be read: the uncertain-prompt flag is unknown."
                )
            if tampered:
                rows = [r for r in rows if verdicts[r["id"]].status is Status.TAMPERED]
                rows = rows[(page - 1) * size : page * size + 1]
            more = len(rows) > size
            del rows[size:]
        self.console.log(request, "sessions", detail=log_detail(params, page))
        return self.console.render(
            request,
            "sessions.html",
            {
                "rows": [self._row(row, verdicts) for row in rows],
                "params": params,
                "page": page,
                "more": more,
                "problems": problems,
                "notes": notes,
                "statuses": STATUSES,
                "policy_marks": POLICY_MARKS,
                "flag_choices": FLAG_CHOICES,
                "sorts": list(queries.SORTS),
            },
            400 if problems else 200,
        )

    def _row(self, row: dict[str, Any], verdicts: dict[uuid.UUID, Any]) -> dict[str, Any]:
        return {
            "id": row["id"].hex,
            "short": row["id"].hex[: queries.MIN_PREFIX],
            "operator": filters.shown(row["operator"]),
            "target": filters.shown(row["target"]),
            "request": filters.shown(request_text(row, 60)),
            "started_at": row["started_at"],
            "duration": duration_text(row),
            "status": row["status"],
            "exit": filters.shown(exit_text(row)),
            "chain": verdicts[row["id"]].status.value,
            "masked": row["masked_input"] or "-",
            "policy": row["policy"] or "-",
            "flags": ", ".join(split_flags(row["flags"])) or "-",
        }

    def session(self, request: Request) -> Response:
        auditor: Auditor = request.state.auditor
        keys = known_gateway_keys(self.console.settings)
        with self._store() as conn:
            row = self._in_scope(conn, request)
            verdict = session_verdicts(conn, [row], keys)[row["id"]]
            moved = (
                transferqueries.list_transfers(
                    conn,
                    transferqueries.TransferFilter(
                        session_id=row["id"],
                        everything=True,
                        limit=TRANSFERS_SHOWN,
                        scope=auditor.scope,
                    ),
                )
                if row["transfers"]
                else []
            )
            raised = list_alerts(
                conn, AlertFilter(session_id=row["id"], limit=ALERTS_SHOWN, scope=auditor.scope)
            )
            shown_instead = files.session_view(
                conn,
                row,
                moved,
                auditor=auditor,
                settings=self.console.settings,
                params=request.query_params,
            )
            asked = described(
                read_requests(queries.stored_chunks(conn, row["id"])), forwarded(conn, row)
            )
        commands = self._commands(row["id"])
        index = self.console.search_engine
        row = promptflag.with_flag(
            row, promptflag.session_flagged(lambda: index().connect(), row["id"]) is True
        )
        self.console.log(request, "view", session_id=row["id"])
        start = read_seconds(request.query_params.get("t"))
        player = {
            "t": start,
            "speed": read_choice(request.query_params.get("speed"), SPEEDS, "1"),
            "idle": read_choice(request.query_params.get("idle"), IDLE_LIMITS, "2"),
            "input": request.query_params.get("input") == "1",
        }
        cast = f"/sessions/{row['id'].hex}/cast" + ("?input=1" if player["input"] else "")
        # The player's recording in pieces (consumer/web/pages/pieces.py): the idle limit
        # is cut on the server, as the segmented player takes none.
        chosen = [f"idle={player['idle']}"] if player["idle"] else []
        chosen += ["input=1"] if player["input"] else []
        in_pieces = f"/sessions/{row['id'].hex}/pieces" + ("?" + "&".join(chosen) if chosen else "")
        live = row["status"] == "active" and not request.query_params.get("t")
        fields = [
            (name, value if isinstance(value, Markup) else filters.shown(value))
            for name, value in session_fields(
                row,
                filters.when(row["started_at"]),
                filters.when(row["ended_at"]),
                f"{verdict.status.value}: {verdict.detail}",
                signer_text(verdict.signer, keys),
            )
        ]
        return self.console.render(
            request,
            "session.html",
            {
                "row": row,
                "id": row["id"].hex,
                "fields": fields,
                "requests": asked,
                "verdict": verdict,
                "commands": commands,
                "transfers": moved,
                "transfers_shown": TRANSFERS_SHOWN,
                "alerts": sorted((alert_row(a) for a in raised), key=lambda a: a["t"]),
                "alerts_shown": ALERTS_SHOWN,
                "player": player,
                "cast": cast,
                **self._timeline(row["id"], player, in_pieces),
                "live": live,
                "moderate": live and request.query_params.get("moderate") == "1",
                "may_terminate": auditor.may_terminate and row["status"] == "active",
                "speeds": SPEEDS,
                "idle_limits": IDLE_LIMITS,
                "exports": list(EXPORTS),
                **shown_instead,
            },
        )

    def _timeline(
        self, session_id: uuid.UUID, player: dict[str, Any], in_pieces: str
    ) -> dict[str, Any]:
        """The player's recording in pieces (none stored: the whole, empty, asciicast), its
        still before play (the session's first screen), and its timeline with the idle
        limit cut (``sshtrail/pieces.py``): the asked moment on it, and where it moves
        from the session's time (the timeline's seek buttons)."""
        with self._store() as conn:
            found = pieces.piece_map(conn, session_id, int(player["idle"] or 0) * 1000)
            still = pieces.first_screen_ms(conn, session_id)
        start = float(player["t"] or 0.0)
        if start and found.pieces:  # else the whole recording plays, on the session's time
            start = found.played_ms(int(start * 1000)) / 1000
        steps = [[real / 1000, shift / 1000] for real, shift in found.steps]
        return {
            "pieces": in_pieces if found.pieces else "",
            "still": found.played_ms(still) / 1000,
            "played_start": start,
            "steps": json.dumps(steps, separators=(",", ":")),
        }

    def watchable(self, connection: HTTPConnection) -> dict[str, Any]:
        """The session a live view asks for, in scope (404 otherwise); the watch logged."""
        with self._store() as conn:
            row = self._in_scope(conn, connection)
        self.console.log(connection, "watch", session_id=row["id"])
        return row

    def given_up(self, session_id: uuid.UUID) -> bool:
        """Whether the store marked the session interrupted without an end chunk: its
        gateway went silent and never ended it (a live view asks now and then)."""
        with self._store() as conn:
            row = queries.session(conn, session_id)
        return interrupted.marked_by_store(
            row["end_reason"], row["interrupted_at"], row["ended_at"]
        )

    def terminate(self, request: Request, reason: str) -> Response:
        """End an active session (the auditor's ``terminate`` right, in scope)."""
        auditor: Auditor = request.state.auditor
        with self._store() as conn:
            row = self._in_scope(conn, request)
        if not auditor.may_terminate:
            self.console.log(request, "denied", session_id=row["id"], detail="terminate")
            raise HTTPException(403, "you may not terminate sessions (auditors.terminate)")
        if not reason:
            raise HTTPException(400, "give a reason: the operator is shown it, and it is recorded")
        self.console.log(request, "terminate", session_id=row["id"], detail=reason)
        if row["status"] != "active":
            outcome, done = f"already ended: {filters.shown(row['end_reason'])}", False
        else:
            order = control.Terminate(
                request_id=control.new_id(),
                at=control.now_ns(),
                session=str(row["id"]),
                auditor=auditor.name,
                reason=reason,
            )
            try:
                answers = ask(self.console.settings, order)
            except BrokerError as exc:
                raise HTTPException(503, f"the request could not be sent: {exc}") from None
            done = bool(answers)
            outcome = (
                answers[0].detail
                if answers
                else "no gateway answered: the session is not open on a running gateway "
                "(it may have just ended)"
            )
        return self.console.render(
            request,
            "terminated.html",
            {"id": row["id"].hex, "outcome": outcome, "done": done},
            200 if done else 409,
        )
