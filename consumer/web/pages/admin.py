"""The admins' pages: the consumer lag and the access log."""

from __future__ import annotations

import uuid

from starlette.requests import Request
from starlette.responses import Response

from consumer.lag import LagReader, NoSuchGroup, PartitionLag
from consumer.web import access
from consumer.web.console import Console
from consumer.web.pages.base import (
    Page,
    check_one_of,
    log_detail,
    read_number,
    read_params,
)
from sshtrail.errors import BrokerError


class Admin(Page):
    """The admins' pages."""

    def __init__(self, console: Console) -> None:
        super().__init__(console)
        self._lag: LagReader | None = None

    def lag(self, request: Request) -> Response:
        groups = self.console.settings.consumer_groups
        rows: list[PartitionLag] = []
        problems: list[str] = []
        try:
            reader = self._lag_reader()
            for group in groups:
                try:
                    rows += reader.read(group)
                except NoSuchGroup as exc:
                    problems.append(str(exc))
        except BrokerError as exc:
            problems.append(str(exc))
            self._lag = None
        self.console.log(request, "lag")
        return self.console.render(request, "lag.html", {"rows": rows, "problems": problems})

    def _lag_reader(self) -> LagReader:
        if self._lag is None:
            self._lag = LagReader(self.console.settings, timeout=5.0, window_s=600.0)
        return self._lag

    def access_log(self, request: Request) -> Response:
        params = read_params(request, "auditor", "action", "session")
        page = read_number(request.query_params.get("page"), 1, 1, 100_000)
        size = self.console.settings.web.page_size
        problems: list[str] = []
        session_id = None
        if params["session"]:
            try:
                session_id = uuid.UUID(params["session"])
            except ValueError:
                problems.append("session: a full session id")
        check_one_of("action", params["action"], access.ACTIONS, problems)
        self.console.log(request, "access-log", detail=log_detail(params, page))
        found: list[access.Entry] = []
        if not problems:
            with self._store() as conn:
                found = access.entries(
                    conn,
                    auditor=params["auditor"] or None,
                    action=params["action"] or None,
                    session_id=session_id,
                    limit=size + 1,
                    offset=(page - 1) * size,
                )
        return self.console.render(
            request,
            "access_log.html",
            {
                "entries": found[:size],
                "more": len(found) > size,
                "page": page,
                "params": params,
                "problems": problems,
                "actions": access.ACTIONS,
            },
            400 if problems else 200,
        )
