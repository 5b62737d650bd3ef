"""``KameleoonPanel``: what this request told Kameleoon, in django-debug-toolbar.

Needs the ``debug-toolbar`` extra; nothing else imports this module. The panel turns on
``decisions.recording`` around the rest of the middleware chain, so ``KameleoonMiddleware`` must
come after ``DebugToolbarMiddleware`` in ``MIDDLEWARE`` (as the toolbar asks of every other
middleware). It shows the visitor code and whether it is new, the consent decision and why,
whether the request counted as a page view and why not, every event queued during the request
(as sent: redacted and normalised), and the process's delivery counters (``stats()``).

The panel renders its HTML itself, with ``format_html``: no template to ship or find.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Iterable
from typing import Any

from debug_toolbar.panels import Panel
from django.core.handlers.asgi import ASGIRequest
from django.http import HttpRequest, HttpResponseBase
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe

from django_kameleoon.api import stats
from django_kameleoon.decisions import (
    CONSENT_REASONS,
    PAGE_VIEW,
    PAGE_VIEW_REASONS,
    Record,
    recording,
)
from django_kameleoon.visitor import RequestState, request_state

__all__ = ["KameleoonPanel"]

#: Shown when the middleware decided nothing inside the panel's recording.
NOT_DECIDED = (
    "not decided: KameleoonMiddleware is not in MIDDLEWARE, comes before "
    "DebugToolbarMiddleware, or failed (logged)"
)


class KameleoonPanel(Panel):
    """The debug toolbar panel; list ``"django_kameleoon.panels.KameleoonPanel"`` in
    ``DEBUG_TOOLBAR_PANELS``."""

    title = "Kameleoon"
    is_async = True

    def process_request(self, request: HttpRequest) -> Any:
        if isinstance(request, ASGIRequest):
            return self._aprocess_request(request)
        with recording() as self._record:
            return super().process_request(request)

    async def _aprocess_request(self, request: HttpRequest) -> HttpResponseBase:
        with recording() as self._record:
            response: Awaitable[HttpResponseBase] = super().process_request(request)
            return await response

    @property
    def nav_subtitle(self) -> str:
        stats = self.get_stats()
        if not stats:
            return ""
        events = len(stats["events"])
        verdict = "page view" if stats["page_view"] == PAGE_VIEW else "no page view"
        return f"{verdict}, {events} event{'' if events == 1 else 's'}"

    def generate_stats(self, request: HttpRequest, response: HttpResponseBase) -> None:
        record: Record = getattr(self, "_record", None) or Record()
        state: RequestState | None = getattr(request, "_kameleoon", None)
        resolved = state is not None
        if state is None:
            # Resolved here for the panel only: nothing of this request used it.
            state = request_state(request)
        self.record_stats(
            {
                "visitor_code": state.visitor_code,
                "is_new": state.is_new,
                "resolved": resolved,
                "used": state.used,
                "consent": record.consent,
                "consent_reason": record.consent_reason,
                "page_view": record.page_view,
                "events": [event.as_dict() for event in record.events],
                "stats": stats(),
            }
        )

    @property
    def content(self) -> SafeString:
        data = self.get_stats()
        return _join(
            _section("Visitor", _visitor_rows(data)),
            _section("Consent", _consent_rows(data)),
            _section("Page view", _page_view_rows(data)),
            _events(data["events"]),
            _section("Delivery counters (this process)", _counter_rows(data["stats"])),
        )


def _visitor_rows(data: dict[str, Any]) -> list[tuple[str, str]]:
    if not data["resolved"]:
        origin = "not used by this request (resolved for this panel)"
    elif data["is_new"]:
        origin = "new: no valid visitor cookie came with the request"
    else:
        origin = "returning: read from the visitor cookie"
    return [
        ("visitor code", data["visitor_code"]),
        ("is new", "yes" if data["is_new"] else "no"),
        ("origin", origin),
        ("used by the view", "yes" if data["used"] else "no"),
    ]


def _consent_rows(data: dict[str, Any]) -> list[tuple[str, str]]:
    reason = data["consent_reason"]
    if reason is None:
        return [("consent", "not asked: nothing in this request needed it")]
    return [
        ("consent", "yes" if data["consent"] else "no"),
        ("consent reason", reason),
        ("meaning", CONSENT_REASONS.get(reason, "")),
    ]


def _page_view_rows(data: dict[str, Any]) -> list[tuple[str, str]]:
    verdict = data["page_view"]
    if verdict is None:
        return [("counted", NOT_DECIDED)]
    return [
        ("counted", "yes" if verdict == PAGE_VIEW else "no"),
        ("page view reason", verdict),
        ("meaning", PAGE_VIEW_REASONS.get(verdict, "")),
    ]


def _counter_rows(counters: dict[str, Any]) -> list[tuple[str, str]]:
    return [(name, json.dumps(value, sort_keys=True)) for name, value in counters.items()]


def _events(events: list[dict[str, Any]]) -> SafeString:
    if not events:
        return _section("Events queued (0)", [("", "no event was queued during this request")])
    tables = (
        _section(
            f"Event {number}: {event['eventType']}",
            [(name, json.dumps(value, ensure_ascii=False)) for name, value in event.items()],
        )
        for number, event in enumerate(events, 1)
    )
    return format_html("<h4>Events queued ({})</h4>{}", len(events), _join(*tables))


def _section(title: str, rows: Iterable[tuple[str, str]]) -> SafeString:
    body = format_html_join("", "<tr><th>{}</th><td><code>{}</code></td></tr>", rows)
    return format_html(
        '<h4>{}</h4><table class="djdt-kameleoon"><tbody>{}</tbody></table>', title, body
    )


def _join(*parts: SafeString) -> SafeString:
    return mark_safe("".join(parts))  # each part was escaped by format_html
