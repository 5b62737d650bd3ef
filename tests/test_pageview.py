"""A page view's events: made from what the request knows, in the sender thread where there is
one (``pageview``, ``BaseBackend.send_later``), and the same on the wire whoever makes them.

The events themselves, field by field, are checked through real requests in
``test_middleware.py``; here, what deferring them must not change: the queue's bound and
counts, the loss report at exit, the debug panel, and one bad item never ending the sender.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from django.test import Client, RequestFactory

import django_kameleoon
from django_kameleoon import decisions, useragent
from django_kameleoon.backends import get_backend
from django_kameleoon.conf import PAGE_FIELDS_CACHE_LENGTH, get_settings
from django_kameleoon.events import Event, SharedFields
from django_kameleoon.middleware import locale_language_tag, queue_page_view
from django_kameleoon.pageview import PageView, page_fields, static_fields
from django_kameleoon.scope import serving_request
from django_kameleoon.signals import events_dropped
from django_kameleoon.testing import DataApiServer
from tests.support import CHROME, Configure, delivered, wait_until

HREF = "https://shop.example.com/shop/"


def page_view(code: str = "visitor-1", href: str = HREF) -> PageView:
    info = useragent.parse(CHROME)
    return PageView(code, get_settings(), info, "fr-CH", href, None, None)


@pytest.fixture
def built_in() -> Iterator[list[str]]:
    """The names of the threads that made page views' events, in order."""
    threads: list[str] = []
    build = PageView.build

    def recorded(self: PageView) -> list[Event]:
        threads.append(threading.current_thread().name)
        return build(self)

    PageView.build = recorded  # type: ignore[method-assign]
    try:
        yield threads
    finally:
        PageView.build = build  # type: ignore[method-assign]


@pytest.fixture
def lost() -> Iterator[list[tuple[str, list[Any], int]]]:
    """What ``events_dropped`` reported: (reason, events, count) per report."""
    reports: list[tuple[str, list[Any], int]] = []

    def receiver(sender: Any, events: list[Any], reason: str, count: int, **kwargs: Any) -> None:
        reports.append((reason, events, count))

    events_dropped.connect(receiver)
    yield reports
    events_dropped.disconnect(receiver)


# -- what is made, and shared ------------------------------------------------------------------


def test_page_views_of_one_page_from_one_referrer_share_their_fields() -> None:
    """Made (redacted, checked) once for every view; long URLs are not remembered."""
    settings = get_settings()
    href, referrer = f"{HREF}?token=abc", "https://www.google.com/"
    first = page_fields(href, referrer, None, settings)
    assert first == {"href": HREF, "referrerHref": referrer}
    assert page_fields(href, referrer, {}, settings) is first
    long_href = "https://shop.example.com/" + "x" * PAGE_FIELDS_CACHE_LENGTH + "?token=abc"
    fields = page_fields(long_href, referrer, None, settings)
    assert fields["href"] == long_href.partition("?")[0][:2048]
    assert page_fields(long_href, referrer, None, settings) is not fields  # not remembered


def test_a_page_the_view_described_gets_fields_of_its_own() -> None:
    settings = get_settings()
    fields = page_fields(HREF, None, {"title": "Shoes"}, settings)
    assert fields == {"href": HREF, "title": "Shoes"}
    assert page_fields(HREF, None, None, settings) == {"href": HREF}


def test_visitors_with_one_browser_and_language_share_their_staticdata() -> None:
    info = useragent.parse(CHROME)
    first = static_fields(info, "kameleoon", locale_language_tag("fr-CH"))
    assert first["localeLanguageTag"] == "fr-CH" and first["deviceType"] == "DESKTOP"
    assert static_fields(useragent.parse(CHROME), "kameleoon", "fr-CH") is first


def test_a_page_views_events_keep_their_encoded_fields_however_many_pages_there_are() -> None:
    """More distinct pages and browsers than the encoding cache by content holds (which a
    flood empties) still encode each shared field dict once, with the fields themselves."""
    from django_kameleoon import events

    settings = get_settings()
    info = useragent.parse(CHROME)
    views = [
        PageView(f"visitor{i}", settings, info, "fr", f"{HREF}{i}/", None, None)
        for i in range(events.ENCODED_CACHE_SIZE + 10)
    ]
    made = [event for view in views for event in view.build()]
    assert all(type(event.fields) is SharedFields for event in made)
    for event in made:
        event.to_json()
    assert all(len(event.fields.encodings) == 1 for event in made)
    # A later view of a page still remembered takes the same fields, encoding and all.
    again = [view.build()[1].fields for view in views[-10:]]
    assert all(fields is event.fields for fields, event in zip(again, made[-19::2], strict=True))


@pytest.mark.parametrize(
    ("statics", "pages", "types"),
    [(True, True, ["STATICDATA", "PAGE"]), (True, False, ["STATICDATA"]), (False, True, ["PAGE"])],
)
def test_a_page_view_holds_the_events_that_are_tracked(
    kameleoon: Configure, statics: bool, pages: bool, types: list[str]
) -> None:
    kameleoon(BACKEND="locmem", TRACK_STATICDATA=statics, TRACK_PAGES=pages)
    request = RequestFactory().get("/shop/", HTTP_USER_AGENT=CHROME)
    assert queue_page_view(request, get_settings(), HREF, None)
    assert [e.event_type for e in django_kameleoon.outbox] == types


# -- where they are made -----------------------------------------------------------------------


def test_the_sender_thread_makes_a_page_views_events(
    client: Client, data_api: DataApiServer, kameleoon: Configure, built_in: list[str]
) -> None:
    """Off the request path: the request only queues what it knows (issue 13)."""
    kameleoon(FLUSH_INTERVAL=60)
    client.get("/page/", HTTP_USER_AGENT=CHROME)
    assert built_in == [], "made on the request path"
    assert get_backend().stats()["queued"] == 2, "a page view counts as its two events"
    events = delivered(data_api)
    assert sorted(e["eventType"] for e in events) == ["PAGE", "STATICDATA"]
    assert built_in == ["kameleoon-sender"]
    assert get_backend().stats() | {"dropped_by_reason": {}} == {
        "queued": 0,
        "sent": 2,
        "retried": 0,
        "dropped": 0,
        "requests": 1,
        "dropped_by_reason": {},
    }


@pytest.mark.parametrize("backend", ["locmem", "sync"])
def test_a_backend_without_a_sender_makes_them_at_once(
    client: Client,
    data_api: DataApiServer,
    kameleoon: Configure,
    built_in: list[str],
    backend: str,
) -> None:
    kameleoon(BACKEND=backend)
    client.get("/page/", HTTP_USER_AGENT=CHROME)
    assert built_in == [threading.current_thread().name]


def test_the_debug_panel_sees_the_events_made_at_once(
    client: Client, kameleoon: Configure, built_in: list[str]
) -> None:
    kameleoon(FLUSH_INTERVAL=60)
    with decisions.recording() as record:
        client.get("/page/", HTTP_USER_AGENT=CHROME)
    assert [e.event_type for e in record.events] == ["STATICDATA", "PAGE"]
    assert built_in == [threading.current_thread().name]


# -- the queue's bound and counts ----------------------------------------------------------------


def test_a_page_view_that_does_not_fit_keeps_what_fits(
    data_api: DataApiServer, kameleoon: Configure
) -> None:
    """Counted as its events against MAX_QUEUE_SIZE: the room left takes the first of them."""
    kameleoon(MAX_QUEUE_SIZE=3, FLUSH_INTERVAL=60)
    backend = get_backend()
    with serving_request():
        backend.send_later(page_view("visitor-1"))
        backend.send_later(page_view("visitor-2"))
    stats = backend.stats()
    assert (stats["queued"], stats["dropped_by_reason"]) == (3, {"queue_full": 1})
    events = delivered(data_api)
    assert [(e["visitorCode"], e["eventType"]) for e in events] == [
        ("visitor-1", "STATICDATA"),
        ("visitor-1", "PAGE"),
        ("visitor-2", "STATICDATA"),
    ]


def test_a_batch_takes_page_views_up_to_max_batch_events(
    data_api: DataApiServer, kameleoon: Configure
) -> None:
    kameleoon(MAX_BATCH_EVENTS=3, FLUSH_INTERVAL=60)
    backend = get_backend()
    for i in range(3):
        backend.send_later(page_view(f"visitor-{i}"))
    django_kameleoon.track_conversion("visitor-9", 12)
    assert len(delivered(data_api)) == 7
    # Each batch is whole page views, never one cut between two batches: 2 + 2 + (2 + 1).
    assert [r.event_count for r in data_api.requests] == [2, 2, 3]


class Unmakeable:
    """Events that cannot be made: a bug in whatever queued them."""

    count = 2

    def build(self) -> list[Event]:
        raise RuntimeError("visitor data that must not be logged")


def test_events_that_cannot_be_made_are_dropped_and_the_sender_goes_on(
    data_api: DataApiServer,
    kameleoon: Configure,
    caplog: pytest.LogCaptureFixture,
    lost: list[tuple[str, list[Any], int]],
) -> None:
    kameleoon(FLUSH_INTERVAL=60)
    backend = get_backend()
    backend.send_later(Unmakeable())
    backend.send_later(page_view())
    assert django_kameleoon.flush(5)
    assert backend.stats()["dropped_by_reason"] == {"error": 2}
    assert lost == [("error", [], 2)]
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors and all("visitor data" not in m for m in errors)
    assert any("RuntimeError" in m for m in errors), errors
    django_kameleoon.track_conversion("visitor-2", 12)
    assert len(delivered(data_api)) == 3, "the sender thread went on"


def test_page_views_lost_at_close_are_reported_as_their_events(
    data_api: DataApiServer, kameleoon: Configure, lost: list[tuple[str, list[Any], int]]
) -> None:
    kameleoon(FLUSH_INTERVAL=60, RETRY_BACKOFF=5.0)
    data_api.stop()
    backend = get_backend()
    for i in range(3):
        backend.send_later(page_view(f"visitor-{i}"))
    backend.close(0.2)
    ((reason, events, count),) = [report for report in lost if report[0] != "queue_full"]
    assert (reason, count) == ("shutdown_timeout", 6)
    assert [(e.visitor_code, e.event_type) for e in events] == [
        (f"visitor-{i}", event_type) for i in range(3) for event_type in ("STATICDATA", "PAGE")
    ]
    assert backend.stats()["dropped_by_reason"] == {"shutdown_timeout": 6}


def test_a_page_view_in_flight_when_the_api_answers_late_is_delivered_once(
    data_api: DataApiServer, kameleoon: Configure
) -> None:
    """The made events replace the queued page view in flight: a flush waits for them."""
    kameleoon(FLUSH_INTERVAL=0.01)
    data_api.delay(0.5)
    backend = get_backend()
    backend.send_later(page_view())
    wait_until(lambda: backend.stats()["queued"] == 0, "the page view taken for a batch")
    assert django_kameleoon.flush(5)
    assert [e["eventType"] for e in data_api.events] == ["STATICDATA", "PAGE"]


class Overcounted:
    """Counted as more events than it makes: flush() must not wait for the difference."""

    count = 3

    def build(self) -> list[Event]:
        return [Event("visitor-1", "PAGE", {"href": HREF})]


def test_a_flush_waits_for_the_events_made_not_those_counted(
    data_api: DataApiServer, kameleoon: Configure
) -> None:
    kameleoon(FLUSH_INTERVAL=60)
    get_backend().send_later(Overcounted())
    assert django_kameleoon.flush(5)
    assert [e["eventType"] for e in data_api.events] == ["PAGE"]
