"""Why a request was tracked or not, kept only while something asks (the debug toolbar panel).

The middleware and the public functions decide in a few places whether a request is a page
view, whether its visitor consented, and which events to queue; each decision has a stable
reason code below. They report it with :func:`note_page_view`, :func:`note_consent` and
:func:`note_events`, which do nothing unless :func:`recording` is active in the current context
(one context variable read): a site without the panel pays nothing else. A context variable,
not an attribute of the request, so that events queued by visitor code are seen too.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field

from django_kameleoon.events import Event

__all__ = [
    "CONSENT_REASONS",
    "PAGE_VIEW",
    "PAGE_VIEW_REASONS",
    "Record",
    "is_recording",
    "note_consent",
    "note_events",
    "note_page_view",
    "recording",
]

#: The verdict of a request that counted as a page view (STATICDATA and PAGE queued).
PAGE_VIEW = "page_view"

#: Every page-view verdict, with what it means; all but ``page_view`` say why not.
PAGE_VIEW_REASONS: dict[str, str] = {
    PAGE_VIEW: "counted as a page view",
    "method": "not a GET request",
    "status": "the status shows no page (not 2xx, or 204/205/206)",
    "not_a_page_request": "a 304 to a request that did not ask for a page",
    "content_type": "the response is not HTML",
    "attachment": "the response is a download (Content-Disposition: attachment)",
    "beacon": "the page's beacon counts it when the browser loads the image (PAGE_VIEWS)",
    "tracking_off": "TRACK_PAGES and TRACK_STATICDATA are both False",
    "excluded_path": "the path matches EXCLUDE_PATHS",
    "bot": "the User-Agent is a bot's or a program's (TRACK_BOTS is False)",
    "consent": "the visitor did not consent",
    "host": "the request's Host is not in ALLOWED_HOSTS",
    "no_backend": "no backend could be made (a settings mistake, logged)",
}

#: Every consent reason, with what it means.
CONSENT_REASONS: dict[str, str] = {
    "gpc": "the browser sent Sec-GPC: 1 (RESPECT_GPC)",
    "dnt": "the browser sent DNT: 1 (RESPECT_DNT)",
    "callable": "the CONSENT callable's answer",
    "callable_failed": "the CONSENT callable failed or names nothing (logged): no consent",
    "default": "no CONSENT callable and no privacy signal: consent",
}


@dataclass
class Record:
    """What was decided for one request; None where nothing was decided."""

    page_view: str | None = None
    consent: bool | None = None
    consent_reason: str | None = None
    events: list[Event] = field(default_factory=list)


_current: ContextVar[Record | None] = ContextVar("django_kameleoon_record", default=None)


@contextmanager
def recording() -> Iterator[Record]:
    """Record the decisions made in this context (and the tasks and threads it starts)."""
    record = Record()
    token = _current.set(record)
    try:
        yield record
    finally:
        _current.reset(token)


def is_recording() -> bool:
    """Whether decisions are recorded here: events must then be made at once, to be seen."""
    return _current.get() is not None


def note_page_view(verdict: str) -> None:
    """The middleware's verdict on a response: ``PAGE_VIEW`` or why not."""
    record = _current.get()
    if record is not None:
        record.page_view = verdict


def note_consent(consent: bool, reason: str) -> bool:
    """The visitor's consent and why; returns ``consent``, so a decision can end with it."""
    record = _current.get()
    if record is not None:
        record.consent, record.consent_reason = consent, reason
    return consent


def note_events(events: Sequence[Event]) -> None:
    """Events handed to the backend, as they will be sent."""
    record = _current.get()
    if record is not None:
        record.events.extend(events)
