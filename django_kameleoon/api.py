"""The public functions: resolve the visitor, build the event, hand it to the backend.

Arguments are checked here, at the call, so a mistake raises in the view that made it rather
than in the sender thread later; nothing is queued for a call that raises.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from django.http import HttpRequest

from django_kameleoon import signals, visitor
from django_kameleoon.backends import get_backend
from django_kameleoon.events import Event, make_event
from django_kameleoon.visitor import has_consent

__all__ = ["flush", "get_visitor_code", "queue_conversion", "track", "track_conversion"]


class WrappedRequest(Protocol):
    """A request object that wraps Django's, as Django REST framework's ``Request`` does."""

    _request: HttpRequest


Target = HttpRequest | WrappedRequest | str

#: Stands in for the visitor code of a visitor who did not consent, so that bad arguments
#: still raise at the call even though nothing will be sent.
_NO_CONSENT = "no-consent"


def _visitor(target: Target) -> tuple[str | None, HttpRequest | None]:
    """The visitor code for a request (None without consent) or a code given directly.

    A code given directly is checked by ``make_event``, with everything else.
    """
    if isinstance(target, str):
        return target, None
    request = _http_request(target)
    return (visitor.get_visitor_code(request) if has_consent(request) else None), request


def _http_request(target: Any) -> HttpRequest:
    """The ``HttpRequest`` itself, also behind Django REST framework's ``Request``, which
    wraps it as ``_request``: the visitor's state must live where the middleware finds it."""
    request = target if isinstance(target, HttpRequest) else getattr(target, "_request", None)
    if not isinstance(request, HttpRequest):
        raise TypeError(
            f"target must be an HttpRequest or a visitor code, not {type(target).__name__}"
        )
    return request


def get_visitor_code(request: HttpRequest | WrappedRequest) -> str:
    """The visitor code of this request: the same value for the whole request."""
    return visitor.get_visitor_code(_http_request(request))


def track(target: Target, event_type: str, **fields: Any) -> Event | None:
    """Queue one event of any of the API's ten types, with the API's own field names.

    ``target`` is the current ``HttpRequest`` or a visitor code. Returns the queued event, or
    None when the visitor has not consented to tracking.
    """
    code, _ = _visitor(target)
    event = make_event(_NO_CONSENT if code is None else code, event_type, fields)
    if code is None:
        return None
    get_backend().send((event,))
    return event


def track_conversion(
    target: Target,
    goal_id: int,
    *,
    revenue: float | None = None,
    negative: bool = False,
    metadata: Mapping[int, Sequence[str]] | None = None,
) -> Event | None:
    """Record that a visitor reached a goal, through the ``signals.conversion`` signal.

    Receivers of the signal see the checked values; the app's own receiver queues the event.
    Returns the event, or None when the visitor has not consented to tracking.
    """
    code, request = _visitor(target)
    fields: dict[str, Any] = {"goalId": goal_id, "revenue": revenue, "metadata": metadata}
    if negative is not False:
        fields["negative"] = negative
    event = make_event(_NO_CONSENT if code is None else code, "CONVERSION", fields)
    if code is None:
        return None
    values = event.fields
    signals.conversion.send(
        sender=Event,
        visitor_code=code,
        goal_id=values["goalId"],
        revenue=values.get("revenue"),
        negative=values.get("negative", False),
        metadata=values.get("metadata"),
        request=request,
        event=event,
    )
    return event


def queue_conversion(
    sender: Any,
    *,
    visitor_code: str,
    goal_id: int,
    revenue: float | None = None,
    negative: bool = False,
    metadata: Mapping[int, Sequence[str]] | None = None,
    event: Event | None = None,
    **kwargs: Any,
) -> None:
    """The app's receiver of ``signals.conversion``: put the conversion on the queue.

    A site that sends the signal itself need not pass ``event``; it is then built here.
    """
    if event is None:
        fields = {"goalId": goal_id, "revenue": revenue, "metadata": metadata}
        if negative:
            fields["negative"] = True
        event = make_event(visitor_code, "CONVERSION", fields)
    get_backend().send((event,))


def flush(timeout: float | None = None) -> bool:
    """Block until every event queued before the call is delivered or given up.

    Returns True when nothing is left, False when ``timeout`` seconds passed first.
    """
    return get_backend().flush(timeout)
