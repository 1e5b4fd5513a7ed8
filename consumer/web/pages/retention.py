"""The admins' Retention page: the legal holds with their history, and the deletions
with their tombstones checked (docs/operations.md, "Retention and legal hold")."""

from __future__ import annotations

from sqlalchemy import select
from starlette.requests import Request
from starlette.responses import Response

from consumer.web.pages.base import Page
from sshtrail import holds, tombstone
from sshtrail.tables import DELETIONS

#: Deletions shown, newest first (``sshtrail deletions`` lists them all).
SHOWN = 200


class RetentionPage(Page):
    """Holds and deletions, for admins."""

    def retention(self, request: Request) -> Response:
        key = tombstone.public_key(self.console.settings)
        with self._store() as conn:
            found_holds = holds.listed(conn)
            query = select(DELETIONS).order_by(DELETIONS.c.deleted_at.desc()).limit(SHOWN)
            rows = [dict(row) for row in conn.execute(query).mappings()]
        deletions = [
            {"row": row, "checked": tombstone.check(row, key), "text": tombstone.describe(row)}
            for row in rows
        ]
        self.console.log(request, "retention", detail="page")
        return self.console.render(
            request,
            "retention.html",
            {
                "holds": [{"row": hold, "names": holds.describe(hold)} for hold in found_holds],
                "deletions": deletions,
                "rules": self.console.settings.retention.rule,
                "shown": SHOWN,
            },
        )
