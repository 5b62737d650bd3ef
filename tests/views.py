"""Views of the test site: pages, non-pages, conversions, each small and named for its case."""

from __future__ import annotations

from collections.abc import Iterator

from django.http import (
    HttpRequest,
    HttpResponse,
    HttpResponseBase,
    HttpResponseRedirect,
    JsonResponse,
    StreamingHttpResponse,
)
from django.shortcuts import render
from django.views.decorators.csrf import csrf_exempt

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
def buy(request: HttpRequest) -> HttpResponseBase:
    """A form POST that converts, then redirects: no PAGE, but the CONVERSION is sent."""
    if request.method != "POST":
        return HttpResponse(status=405)
    django_kameleoon.track_conversion(request, 42, revenue=19.99)
    return HttpResponseRedirect("/thanks/")


def thanks(request: HttpRequest) -> HttpResponse:
    """A page whose template records goal 7 with revenue 5.5."""
    return render(request, "kameleoon_tests/thanks.html")


async def async_page(request: HttpRequest) -> HttpResponse:
    return HttpResponse("<!doctype html><p>async</p>", content_type="text/html")


async def async_buy(request: HttpRequest) -> HttpResponseBase:
    django_kameleoon.track_conversion(request, 43, revenue=1.5)
    return HttpResponseRedirect("/page/")
