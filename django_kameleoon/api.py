"""The public functions: resolve the visitor, build the event, hand it to the backend.

Every call takes the same path, in two steps:

1. :func:`_checked`: the arguments are checked (``events.normalise_fields``, the visitor code,
   the ``key``) before any setting is read, so a mistake raises ``TypeError``/``ValueError`` in
   the view that made it, rather than in the sender thread later, whatever the settings say;
2. :func:`_event` and :func:`_send`: the visitor is resolved (a bot's request, or one
   without consent, queues nothing: ``visitor.is_tracked``), URLs are redacted
   (:func:`outgoing_fields`), the event made and queued.
   No configuration mistake is raised from this step into a request: it is logged
   (``conf.report_misconfiguration``) and the function returns None, because gunicorn,
   uvicorn and uWSGI run no system checks and a site with a mistake in its settings must keep
   serving pages.

Nothing is queued for a call that raises. The ``a``-prefixed twins take the same arguments in
async code: they ask a ``CONSENT`` callable (which may use the ORM) through ``sync_to_async``
and await it. The sync functions are safe in async code too: there the site's code runs in a
thread of its own while they wait (``visitor.call_site_code``).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping, Sequence
from functools import partial
from typing import Any

from asgiref.sync import sync_to_async
from django.core.exceptions import ImproperlyConfigured
from django.db import transaction
from django.http import HttpRequest
from django.utils.crypto import salted_hmac

from django_kameleoon import signals
from django_kameleoon.backends import BaseBackend, get_backend
from django_kameleoon.backends.base import Counters
from django_kameleoon.conf import Settings, get_settings, report_misconfiguration
from django_kameleoon.decisions import is_recording, note_events
from django_kameleoon.events import (
    URL_FIELDS,
    Event,
    PendingEvents,
    normalise_fields,
    validate_visitor_code,
)
from django_kameleoon.visitor import (
    WrappedRequest,
    call_site_code,
    consent_pending,
    get_visitor_code,
    has_consent,
    http_request,
    is_tracked,
    orm_refused_here,
    use_visitor,
)

__all__ = [
    "atrack",
    "atrack_conversion",
    "flush",
    "get_visitor_code",
    "outgoing_fields",
    "queue",
    "queue_later",
    "stats",
    "track",
    "track_conversion",
]

logger = logging.getLogger("django_kameleoon")

Target = HttpRequest | WrappedRequest | str
#: A checked target: a visitor code, or the ``HttpRequest`` itself (DRF's unwrapped).
Visitor = HttpRequest | str
#: What identifies one conversion: an order's primary key, typically.
Key = str | int | uuid.UUID

#: The ``salted_hmac`` salt of keyed nonces: the same SECRET_KEY signs other things.
_NONCE_SALT = "django_kameleoon.api.conversion-nonce"


def track(target: Target, event_type: str, **fields: Any) -> Event | None:
    """Queue one event of any of the API's ten types, with the API's own field names.

    ``target`` is the current ``HttpRequest`` (or DRF ``Request``) or a visitor code. Returns
    the queued event; None when the request is a bot's (unless ``TRACK_BOTS``), when the
    visitor has not consented to tracking, or when a configuration mistake (logged) keeps
    anything from being tracked.
    """
    visitor, values = _checked(target, event_type, fields)
    event = _event(visitor, event_type, values, given=fields)
    return event if event is not None and _send(event) else None


async def atrack(target: Target, event_type: str, **fields: Any) -> Event | None:
    """:func:`track` for async code: the same arguments, checks and result."""
    visitor, values = _checked(target, event_type, fields)
    await _settle_consent(visitor)
    event = _event(visitor, event_type, values, given=fields)
    return event if event is not None and _send(event) else None


def track_conversion(
    target: Target,
    goal_id: int,
    *,
    revenue: float | None = None,
    negative: bool = False,
    metadata: Mapping[int, Sequence[str]] | None = None,
    key: Key | None = None,
    on_commit: bool = False,
) -> Event | None:
    """Queue a conversion, then tell the ``signals.conversion`` receivers about it.

    The event is queued first, by this call itself, so that no receiver (or a missing app
    config) can lose it; receivers are a notification, sent robustly: one that raises is
    logged and fails neither the call nor the conversion. Returns the event; None when the
    request is a bot's (unless ``TRACK_BOTS``), the visitor has not consented to tracking, or a
    configuration mistake (logged) prevents it.

    ``key`` (an order's primary key, say) makes the conversion idempotent: its nonce is
    derived from the visitor, the goal, ``negative`` and the key, so a reloaded page or a
    second call is the same event to the Data API, which keeps only the first.
    ``on_commit=True`` queues it (and notifies receivers) when the database transaction
    commits, and never if it rolls back; the event returned is the one the commit will queue.
    """
    visitor, values, key = _checked_conversion(target, goal_id, revenue, negative, metadata, key)
    if type(on_commit) is not bool:
        raise TypeError(f"on_commit must be True or False, not {type(on_commit).__name__}")
    event = _event(visitor, "CONVERSION", values, key)
    if event is None:
        return None
    # No transaction runs in an event loop's thread: the ORM is refused there.
    if on_commit and not orm_refused_here():
        transaction.on_commit(partial(_convert, event, visitor))
        return event
    return _convert(event, visitor)


async def atrack_conversion(
    target: Target,
    goal_id: int,
    *,
    revenue: float | None = None,
    negative: bool = False,
    metadata: Mapping[int, Sequence[str]] | None = None,
    key: Key | None = None,
) -> Event | None:
    """:func:`track_conversion` for async code: the same arguments, checks and result.

    Receivers of ``signals.conversion`` run through ``sync_to_async``, so theirs may use the
    ORM. There is no ``on_commit``: Django runs no transaction in an event loop's thread; call
    ``track_conversion(..., on_commit=True)`` in the sync function that runs the transaction.
    """
    visitor, values, key = _checked_conversion(target, goal_id, revenue, negative, metadata, key)
    await _settle_consent(visitor)
    event = _event(visitor, "CONVERSION", values, key)
    if event is None or not _send(event):
        return None
    if signals.conversion.has_listeners(Event):
        await sync_to_async(_notify_conversion)(event, visitor)
    return event


def _checked_conversion(
    target: Target, goal_id: Any, revenue: Any, negative: Any, metadata: Any, key: Any
) -> tuple[Visitor, dict[str, Any], str | None]:
    """Step 1 for a conversion: :func:`_checked`'s visitor and fields, and the key as text."""
    if type(negative) is not bool:
        raise TypeError(f"negative must be True or False, not {type(negative).__name__}")
    fields = {"goalId": goal_id, "revenue": revenue, "metadata": metadata}
    if negative:
        fields["negative"] = True
    return (*_checked(target, "CONVERSION", fields), _key_text(key))


def _checked(
    target: Target, event_type: str, fields: Mapping[str, Any]
) -> tuple[Visitor, dict[str, Any]]:
    """Step 1: the visitor (a valid code, or the ``HttpRequest``) and the normalised fields.

    Reads no setting, so wrong arguments raise whatever state the settings are in.
    """
    visitor = validate_visitor_code(target) if isinstance(target, str) else http_request(target)
    return visitor, normalise_fields(event_type, fields)


def _key_text(key: Any) -> str | None:
    """An idempotency key as text: ``order.pk`` and ``str(order.pk)`` name the same order."""
    if key is None:
        return None
    if isinstance(key, bool) or not isinstance(key, (str, int, uuid.UUID)):
        raise TypeError(f"key must be a str, an int or a UUID, not {type(key).__name__}")
    text = str(key)
    if not text:
        raise ValueError("key must not be empty: it names one conversion, such as an order")
    return text


async def _settle_consent(visitor: Visitor) -> None:
    """Ask a ``CONSENT`` callable in a thread, where it may use the ORM; the answer is cached
    on the request for :func:`_event`."""
    if isinstance(visitor, HttpRequest) and consent_pending(visitor):
        await sync_to_async(has_consent)(visitor)


def _event(
    visitor: Visitor,
    event_type: str,
    values: dict[str, Any],
    key: str | None = None,
    *,
    given: Mapping[str, Any] | None = None,
) -> Event | None:
    """Step 2: the event for the visitor; None without consent or with a settings mistake.

    An event with URLs is made again from the ``given`` fields, redacted first: the checked
    ``values`` are clipped to the API's limit, which could cut a secret in two before a rule
    that needs the whole of it sees it.
    """
    try:
        if given is not None and event_type in URL_FIELDS:
            values = outgoing_fields(event_type, given)
        if isinstance(visitor, str):
            code = visitor
        else:
            # Used before consent is asked: the response is this visitor's either way.
            state = use_visitor(visitor)
            if not is_tracked(visitor):
                return None
            code = state.visitor_code
        nonce = None if key is None else _keyed_nonce(code, values, key)
        return Event(code, event_type, values, nonce)
    except ImproperlyConfigured as exc:
        report_misconfiguration(exc)
        return None


def _keyed_nonce(code: str, values: Mapping[str, Any], key: str) -> str:
    """The nonce of one conversion: the visitor, the goal, ``negative`` and the key, hashed with
    the site's ``SECRET_KEY`` and cut to the API's 16 hex characters.

    The same conversion always gets the same nonce, so the Data API drops its copies. Keyed, so
    that nobody without the secret can work out a visitor's next nonce and send it first, which
    would have the real conversion dropped as a duplicate. A refund (``negative``) of an order
    is another event than the order. Visitor codes and goal ids hold no NUL, so the fields
    cannot run into each other.
    """
    text = f"{code}\0{values['goalId']}\0{values.get('negative', False)}\0{key}"
    return salted_hmac(_NONCE_SALT, text, algorithm="sha256").hexdigest()[:16]


def _backend() -> BaseBackend | None:
    """This process's backend; None (logged) when the settings cannot make one."""
    try:
        return get_backend()
    except ImproperlyConfigured as exc:
        report_misconfiguration(exc)
        return None


def _send(event: Event) -> bool:
    """Queue the event; False when no backend can take it (logged)."""
    return queue((event,))


def queue(events: Sequence[Event]) -> bool:
    """Hand events to the backend, the one way every event is queued; False when no backend
    can take them (logged). Noted for the debug toolbar panel (``decisions``)."""
    backend = _backend()
    if backend is None:
        return False
    backend.send(events)
    note_events(events)
    return True


def queue_later(pending: PendingEvents) -> bool:
    """:func:`queue` for events the backend may make later, off the request path
    (``BaseBackend.send_later``); made at once while the debug toolbar panel records them."""
    if is_recording():
        return queue(pending.build())
    backend = _backend()
    if backend is None:
        return False
    backend.send_later(pending)
    return True


def _convert(event: Event, visitor: Visitor) -> Event | None:
    """Queue a conversion, then notify receivers: now, or when the transaction commits."""
    if not _send(event):
        return None
    if signals.conversion.has_listeners(Event):
        _notify_conversion(event, visitor)
    return event


def _notify_conversion(event: Event, visitor: Visitor) -> None:
    """Send ``signals.conversion``; a receiver that raises is logged, never raised.

    Receivers are the site's code and may use the ORM: called from an event loop's thread,
    they run in a thread of their own (``visitor.call_site_code``).
    """
    values = event.fields
    send = partial(
        signals.conversion.send_robust,
        sender=Event,
        visitor_code=event.visitor_code,
        goal_id=values["goalId"],
        revenue=values.get("revenue"),
        negative=values.get("negative", False),
        metadata=values.get("metadata"),
        request=visitor if isinstance(visitor, HttpRequest) else None,
        event=event,
    )
    for receiver, response in call_site_code(send):
        if isinstance(response, Exception):
            # The type only: a message may quote visitor data. The conversion is queued.
            logger.error(
                "Kameleoon: a conversion receiver (%s) raised %s",
                getattr(receiver, "__qualname__", receiver),
                type(response).__name__,
                exc_info=response,
            )


def outgoing_fields(
    event_type: str, fields: Mapping[str, Any], settings: Settings | None = None
) -> dict[str, Any]:
    """``fields`` as they will be sent: every URL among them redacted, then normalised.

    The one place where the site's redaction rules (``Settings.url_redactor``) meet an event,
    whoever made it: ``track()``, and the middleware's PAGE with what ``{% kameleoon_page %}``
    set. URLs are redacted before ``normalise_fields`` clips them to the API's limit, so that a
    secret cut in two by the limit cannot slip past a rule that needs the whole of it.
    """
    url_fields = URL_FIELDS.get(event_type) if isinstance(event_type, str) else None
    if url_fields:
        redact = (settings or get_settings()).url_redactor
        fields = {
            name: redact(value) if name in url_fields and isinstance(value, str) else value
            for name, value in fields.items()
        }
    return normalise_fields(event_type, fields)


def flush(timeout: float | None = None) -> bool:
    """Block until every event queued before the call is delivered or given up, for at most
    ``timeout`` seconds (default ``FLUSH_TIMEOUT``; ``math.inf`` waits for as long as it takes).

    Returns True when nothing is left, False when the time ran out first (the events stay
    queued), or when a configuration mistake (logged) leaves no backend to deliver anything.
    """
    backend = _backend()
    return False if backend is None else backend.flush(timeout)


def stats() -> dict[str, Any]:
    """This process's delivery counters, in one shape whatever the backend.

    ``queued`` (waiting now), ``sent`` (delivered), ``retried`` (sent again after a failure, per
    event and retry), ``dropped`` (given up, for any reason), ``requests`` (made to the API) and
    ``dropped_by_reason`` (``dropped`` by reason code, e.g. ``{"queue_full": 3}``); all zero
    while a configuration mistake (logged) leaves no backend.
    """
    backend = _backend()
    return Counters().report(queued=0) if backend is None else backend.stats()
