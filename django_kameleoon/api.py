"""The public functions: resolve the visitor, build the event, hand it to the backend.

Every call takes the same path: fields are normalised (``events.normalise_fields``), so a
mistake raises in the view that made it rather than in the sender thread later; then the
visitor is resolved (a bot's request, or one without consent, queues nothing); then the event
is queued.
Nothing is queued for a call that raises.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from django.http import HttpRequest

from django_kameleoon import signals
from django_kameleoon.backends import get_backend
from django_kameleoon.events import Event, make_event, normalise_fields
from django_kameleoon.visitor import (
    WrappedRequest,
    get_visitor_code,
    http_request,
    is_tracked,
    request_state,
)

__all__ = ["flush", "get_visitor_code", "stats", "track", "track_conversion"]

logger = logging.getLogger("django_kameleoon")

Target = HttpRequest | WrappedRequest | str


def track(target: Target, event_type: str, **fields: Any) -> Event | None:
    """Queue one event of any of the API's ten types, with the API's own field names.

    ``target`` is the current ``HttpRequest`` (or DRF ``Request``) or a visitor code. Returns
    the queued event, or None when the request is a bot's (unless ``TRACK_BOTS``) or the
    visitor has not consented to tracking.
    """
    event, _ = _queue(target, event_type, fields)
    return event


def track_conversion(
    target: Target,
    goal_id: int,
    *,
    revenue: float | None = None,
    negative: bool = False,
    metadata: Mapping[int, Sequence[str]] | None = None,
) -> Event | None:
    """Queue a conversion, then tell the ``signals.conversion`` receivers about it.

    The event is queued first, by this call itself, so that no receiver (or a missing app
    config) can lose it; receivers are a notification, sent robustly: one that raises is
    logged by Django and fails neither the call nor the conversion. Returns the event, or None
    when the request is a bot's (unless ``TRACK_BOTS``) or the visitor has not consented.
    """
    if type(negative) is not bool:
        raise TypeError(f"negative must be True or False, not {type(negative).__name__}")
    fields = {"goalId": goal_id, "revenue": revenue, "metadata": metadata}
    if negative:
        fields["negative"] = True
    event, request = _queue(target, "CONVERSION", fields)
    if event is not None:
        _notify_conversion(event, request)
    return event


def _notify_conversion(event: Event, request: HttpRequest | None) -> None:
    """Send ``signals.conversion``; a receiver that raises is logged, never raised."""
    values = event.fields
    responses = signals.conversion.send_robust(
        sender=Event,
        visitor_code=event.visitor_code,
        goal_id=values["goalId"],
        revenue=values.get("revenue"),
        negative=values.get("negative", False),
        metadata=values.get("metadata"),
        request=request,
        event=event,
    )
    for receiver, response in responses:
        if isinstance(response, Exception):
            # The type only: a message may quote visitor data. The conversion is queued.
            logger.error(
                "Kameleoon: a conversion receiver (%s) raised %s",
                getattr(receiver, "__qualname__", receiver),
                type(response).__name__,
                exc_info=response,
            )


def _queue(
    target: Target, event_type: str, fields: Mapping[str, Any]
) -> tuple[Event | None, HttpRequest | None]:
    """Check, resolve the visitor, queue: the one path of every event the functions make.

    Returns the event (None for a bot or without consent: ``visitor.is_tracked``) and the
    request it came from (None for a code, which is recorded whatever sent it).
    """
    if isinstance(target, str):
        event = make_event(target, event_type, fields)
        request = None
    else:
        request = http_request(target)
        values = normalise_fields(event_type, fields)
        if not is_tracked(request):
            return None, request
        event = Event(request_state(request).visitor_code, event_type, values)
    get_backend().send((event,))
    return event, request


def flush(timeout: float | None = None) -> bool:
    """Block until every event queued before the call is delivered or given up.

    Returns True when nothing is left, False when ``timeout`` seconds passed first.
    """
    return get_backend().flush(timeout)


def stats() -> dict[str, int]:
    """This process's delivery counters, in one shape whatever the backend.

    ``queued`` (waiting now), ``sent`` (delivered), ``retried`` (sent again after a failure, per
    event and retry), ``dropped`` (given up, for any reason) and ``requests`` (made to the API).
    """
    return get_backend().stats()
