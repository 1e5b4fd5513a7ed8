"""The console's pages, one module per job: signing in (``signin``), the sessions and a
session with its player (``sessions``), downloads (``downloads``), search (``search``),
reviews (``reviews``), alerts (``alerts``) and the admins' pages (``admin``), each a
class built on :class:`~consumer.web.pages.base.Page`; ``consumer/web/app.py`` routes to
their methods.

Each handler runs in the thread pool, checks the session is in the auditor's scope (out
of scope is the same 404 as no such session), writes the access log entry, then answers.
Filters are the CLI's (:mod:`sshtrail.queries`, :mod:`sshtrail.search`), with the
auditor's scope added to every query.
"""
