"""The search page: the index and the file paths, one :func:`sshtrail.search.find`."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from consumer.web import filters
from consumer.web.auth import Auditor
from consumer.web.pages.base import (
    Page,
    check_one_of,
    log_detail,
    read_moment,
    read_params,
)
from sshtrail import queries
from sshtrail.search import Query, find
from sshtrail.states import KINDS

#: Hits a search page shows at most.
SEARCH_LIMIT = 200


class Search(Page):
    """The search page."""

    def search(self, request: Request) -> Response:
        auditor: Auditor = request.state.auditor
        params = read_params(request, "q", "kind", "operator", "target", "since", "until")
        problems: list[str] = []
        since = read_moment(params["since"], "since", problems)
        until = read_moment(params["until"], "until", problems)
        kind = params["kind"]
        check_one_of("kind", kind, KINDS, problems)
        hits: list[dict[str, Any]] = []
        notes: list[str] = []
        text = params["q"]
        if text.strip() and not problems:
            query = Query(
                text,
                kind=kind or None,  # type: ignore[arg-type]
                operator=params["operator"] or None,
                target=params["target"] or None,
                since=since,
                until=until,
                limit=SEARCH_LIMIT,
                scope=auditor.scope,
            )
            found = find(
                query, lambda: self.console.search_engine().connect(), self.console.store.connect
            )
            if "index" in found.unread:
                notes.append("The search index cannot be read yet: is the index group running?")
            if "store" in found.unread:
                notes.append("File transfers were not searched: the store cannot be read.")
            hits = [
                {
                    "session": hit.session_id.hex,
                    "short": hit.session_id.hex[: queries.MIN_PREFIX],
                    "kind": hit.kind,
                    "t": hit.t / 1e9,
                    "at": hit.at,
                    "operator": filters.shown(hit.operator),
                    "target": filters.shown(hit.target),
                    "text": filters.highlighted(hit.text, hit.matches(text)),
                    "certain": hit.certain,
                }
                for hit in found.hits
            ]
        if text.strip():
            self.console.log(request, "search", detail=log_detail(params, 1))
        return self.console.render(
            request,
            "search.html",
            {
                "params": params,
                "hits": hits,
                "limit": SEARCH_LIMIT,
                "problems": problems,
                "notes": notes,
                "kinds": KINDS,
            },
            400 if problems else 200,
        )
