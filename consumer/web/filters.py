"""How stored values look on the console's pages: times, durations, highlighted hits.

Jinja2 escapes every value put into a page (autoescape is on for every
template); these helpers only shape text, and whatever they mark up is built
from escaped pieces (:func:`highlighted`, :func:`when`).
"""

from __future__ import annotations

import datetime as dt

from markupsafe import Markup, escape

from sshtrail.textsafe import visible


def when(moment: dt.datetime | None) -> Markup:
    """A stored (UTC) time: the page's script shows it in the viewer's zone, named;
    without the script it reads in UTC, named so."""
    if moment is None:
        return Markup("-")
    utc = moment.astimezone(dt.UTC)
    return Markup('<time datetime="{}">{} UTC</time>').format(
        utc.isoformat(timespec="seconds").replace("+00:00", "Z"),
        utc.strftime("%Y-%m-%d %H:%M:%S"),
    )


def shown(value: object) -> str:
    """Text that came from a session, its control characters made visible (``\\e``)."""
    if value is None:
        return "-"
    return visible(str(value))


def highlighted(text: str, spans: list[tuple[int, int]]) -> Markup:
    """``text`` with ``spans`` (character offsets) in ``<mark>``, every piece escaped."""
    pieces: list[Markup] = []
    last = 0
    for start, end in spans:
        pieces.append(escape(visible(text[last:start])))
        pieces.append(Markup("<mark>{}</mark>").format(visible(text[start:end])))
        last = end
    pieces.append(escape(visible(text[last:])))
    return Markup("").join(pieces)
