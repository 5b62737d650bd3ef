"""Views of the test site: pages, non-pages, conversions, each small and named for its case."""

from __future__ import annotations

import datetime
import io
import os
import uuid
from collections.abc import Iterator

from django.http import (
    FileResponse,
    HttpRequest,
    HttpResponse,
    HttpResponseBase,
    HttpResponseRedirect,
    JsonResponse,
    StreamingHttpResponse,
)
from django.shortcuts import render
from django.views.decorators.cache import cache_control, cache_page
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import condition, etag, last_modified

import django_kameleoon

LONG_TITLE = "T" * 1000


def page(request: HttpRequest) -> HttpResponse:
    """An HTML page whose template sets the PAGE fields and renders the visitor code."""
    context = {
        "title": request.GET.get("title", "Home"),
        "canonical": "https://example.com/canonical/" if "canonical" in request.GET else None,
        "key_pages": request.GET.get("keys"),
    }
    return render(request, "kameleoon_tests/page.html", context)


def self_canonical(request: HttpRequest) -> HttpResponse:
    """A page whose canonical URL is its own absolute URL, query and all, as many sites do."""
    return render(request, "kameleoon_tests/page.html", {"canonical": request.build_absolute_uri()})


def long_title(request: HttpRequest) -> HttpResponse:
    return render(request, "kameleoon_tests/page.html", {"title": LONG_TITLE})


def plain(request: HttpRequest) -> HttpResponse:
    """An HTML page without any Kameleoon tag: the middleware alone tracks it."""
    return render(request, "kameleoon_tests/plain.html")


def xhtml(request: HttpRequest) -> HttpResponse:
    return HttpResponse(
        "<html xmlns='http://www.w3.org/1999/xhtml'/>", content_type="application/xhtml+xml"
    )


def streaming(request: HttpRequest) -> StreamingHttpResponse:
    def chunks() -> Iterator[bytes]:
        yield b"<!doctype html><p>"
        yield b"streamed</p>"

    return StreamingHttpResponse(chunks(), content_type="text/html; charset=utf-8")


def json_view(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"ok": True})


def css_view(request: HttpRequest) -> HttpResponse:
    return HttpResponse("body { color: red }", content_type="text/css")


def no_content(request: HttpRequest) -> HttpResponse:
    return HttpResponse(status=204)


def redirect_view(request: HttpRequest) -> HttpResponseRedirect:
    return HttpResponseRedirect("/page/")


def server_error(request: HttpRequest) -> HttpResponse:
    raise RuntimeError("the view failed")


def code_in_json(request: HttpRequest) -> JsonResponse:
    """A non-page that uses the visitor code: the code must still be stored in the cookie."""
    return JsonResponse({"visitor": django_kameleoon.get_visitor_code(request)})


@csrf_exempt
def convert_many(request: HttpRequest, first: int, count: int) -> HttpResponse:
    """Conversions of visitors ``conv-<first>`` to ``conv-<first + count - 1>``, in one request:
    how the durable tests push thousands of events through a real server quickly."""
    for number in range(first, first + count):
        django_kameleoon.track_conversion(f"conv-{number}", 42, revenue=1.0)
    return HttpResponse("ok", content_type="text/plain")


def backend_stats(request: HttpRequest) -> JsonResponse:
    """This process's backend counters and pid: what the reliability tests read of a server."""
    from django_kameleoon.backends import get_backend

    return JsonResponse({**get_backend().stats(), "pid": os.getpid()})


@csrf_exempt
def buy(request: HttpRequest) -> HttpResponseBase:
    """A form POST that converts, then redirects: no PAGE, but the CONVERSION is sent."""
    if request.method != "POST":
        return HttpResponse(status=405)
    django_kameleoon.track_conversion(request, 42, revenue=19.99)
    return HttpResponseRedirect("/thanks/")


def thanks(request: HttpRequest) -> HttpResponse:
    """A page whose template records goal 7 with revenue 5.5."""
    return render(request, "kameleoon_tests/thanks.html")


def order_thanks(request: HttpRequest, order: int) -> HttpResponse:
    """A thank-you page that records goal 7 once per order, however often it is reloaded."""
    return render(request, "kameleoon_tests/order_thanks.html", {"order": order})


async def async_page(request: HttpRequest) -> HttpResponse:
    return HttpResponse("<!doctype html><p>async</p>", content_type="text/html")


async def async_buy(request: HttpRequest) -> HttpResponseBase:
    """The sync function called from an async view, as sites do."""
    django_kameleoon.track_conversion(request, 43, revenue=1.5)
    return HttpResponseRedirect("/page/")


# -- caching and conditional requests (tests/test_caching.py) ----------------------------------


def stamped(request: HttpRequest) -> HttpResponse:
    """A page without tags whose body is new each time the view runs: equal bodies, a cache hit."""
    return HttpResponse(f"<!doctype html><p>{uuid.uuid4()}</p>", content_type="text/html")


def beacon_page(request: HttpRequest) -> HttpResponse:
    """A page that carries the beacon, with a body new each time the view runs (``stamp``)."""
    context = {
        "title": request.GET.get("title", "Beacon page"),
        "canonical": "https://example.com/canonical/" if "canonical" in request.GET else None,
        "keys": request.GET.get("keys"),
        "stamp": uuid.uuid4(),
    }
    return render(request, "kameleoon_tests/beacon.html", context)


def only_page_fields(request: HttpRequest) -> HttpResponse:
    """A page that sets PAGE fields and renders nothing per visitor: the same for everyone."""
    return render(request, "kameleoon_tests/page_fields.html")


cached_page = cache_page(60)(page)
cached_thanks = cache_page(60)(thanks)
cached_stamped = cache_page(60)(stamped)
cached_code_json = cache_page(60)(code_in_json)
public_stamped = cache_control(public=True, max_age=60)(stamped)
cached_beacon_page = cache_page(60)(beacon_page)
#: Cacheable by any cache in front of Django (a CDN, a reverse proxy), not by Django's.
shareable_beacon_page = cache_control(max_age=60)(beacon_page)

#: The validator all three conditional decorators answer 304 for.
ETAG = '"v1"'
LAST_MODIFIED = datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc)

with_etag = etag(lambda request: ETAG)(plain)
with_last_modified = last_modified(lambda request: LAST_MODIFIED)(plain)
with_condition = condition(etag_func=lambda request: ETAG)(plain)


def attachment(request: HttpRequest) -> FileResponse:
    """An HTML file downloaded, not shown: no page view."""
    return FileResponse(
        io.BytesIO(b"<!doctype html><p>report</p>"), as_attachment=True, filename="report.html"
    )


async def async_abuy(request: HttpRequest) -> HttpResponseBase:
    """The async twins, awaited."""
    await django_kameleoon.atrack_conversion(request, 44, revenue=2.5, key="order-1")
    await django_kameleoon.atrack(request, "CUSTOMDATA", index=1, valuesCountMap={"basket": 1})
    return HttpResponseRedirect("/page/")


# Checkouts posted by the real-server tests; set by hand, as Django 4.2's csrf_exempt() would
# turn an async view into a sync one.
async_buy.csrf_exempt = True  # type: ignore[attr-defined]
async_abuy.csrf_exempt = True  # type: ignore[attr-defined]


# -- back-pressure (tests/test_backpressure.py) ------------------------------------------------


def burst(request: HttpRequest, count: int) -> HttpResponse:
    """A view that records ``count`` conversions: in a request, a full queue never waits."""
    for i in range(count):
        django_kameleoon.track_conversion(f"burst-{i}", 6)
    return HttpResponse("done", content_type="text/plain")


async def async_burst(request: HttpRequest, count: int) -> HttpResponse:
    for i in range(count):
        django_kameleoon.track_conversion(f"burst-{i}", 6)
    return HttpResponse("done", content_type="text/plain")
