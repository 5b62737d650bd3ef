"""A local, strict stand-in for Kameleoon's Data API ``POST /visit/events``.

Why it exists: the real API answers 202 *before* it reads the body, so a sender that gets a
field wrong is never told; the data just goes missing. This server answers the same way, but
validates every request and every event against Kameleoon's own OpenAPI page for the endpoint
(a copy is ``docs/data-api-visit-events.md``) and records each broken rule in ``violations``.
Tests, ours and our users', can then say "everything arrived, typed right, and nothing was
wrong", and can script the failures a sender must survive (errors, slowness, lost answers,
the API going away and coming back).

Why it stands alone: it imports neither Django nor any ``django_kameleoon`` module outside
this package, and its rule tables are transcribed from that page separately from
``events.py``. A test that holds the package to its own tables cannot catch a misreading of
the spec; an independent oracle can. Standard library only, so it runs anywhere the package
is installed.

The package, read bottom-up: ``rules`` (the page's tables, as data; an event on the wire is a
``WireEvent``), ``validation`` (one value, one event), ``body`` (both body formats, and a whole
request's ``Verdict``), ``received`` (one request as received, one scripted fault),
``recording`` (all that was received, and the faults to come), ``handler`` (the HTTP side),
``server`` (``DataApiServer``).

Usage::

    with DataApiServer(site_code="my-site") as api:
        ...  # point KAMELEOON["DATA_API_URL"] at api.url, make the site send
        api.wait_for_events(2)
        assert api.violations == []
"""

from __future__ import annotations

from django_kameleoon.testing.body import ParsedBody, Verdict, examine_request, parse_body
from django_kameleoon.testing.received import Headers, ReceivedRequest
from django_kameleoon.testing.rules import (
    COMMON_FIELDS,
    EVENT_FIELDS,
    EVENTS_PATH,
    MAX_BODY_BYTES,
    FieldSpec,
    WireEvent,
)
from django_kameleoon.testing.server import DataApiServer
from django_kameleoon.testing.validation import examine_event

__all__ = [
    "COMMON_FIELDS",
    "EVENTS_PATH",
    "EVENT_FIELDS",
    "MAX_BODY_BYTES",
    "DataApiServer",
    "FieldSpec",
    "Headers",
    "ParsedBody",
    "ReceivedRequest",
    "Verdict",
    "WireEvent",
    "examine_event",
    "examine_request",
    "parse_body",
]
