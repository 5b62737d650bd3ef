"""Pages served from a cache, and revisits answered 304 Not Modified.

Django's cache middleware (in the README's order: ours above it) and ``cache_page`` run here
for real, on the locmem cache, through the test client; each visitor is a ``Client`` of its
own, and what each one gets (its page, its cookie, its events at the local Data API) is
checked visitor by visitor.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest
from django.core.cache import cache
from django.http import HttpResponse
from django.test import Client, override_settings

from django_kameleoon import caching
from django_kameleoon.testing import DataApiServer
from tests.support import COOKIE, Configure, browser, delivered
from tests.views import ETAG, LAST_MODIFIED

#: One page, served by Django's whole-site cache and by a view under ``cache_page``.
BOTH_CACHES = ["site-cache", "cache_page"]
OURS = "django_kameleoon.middleware.KameleoonMiddleware"
#: The README's order, with Django's whole-site cache around the stack.
SITE_CACHE = [
    "django.middleware.security.SecurityMiddleware",
    OURS,
    "django.middleware.cache.UpdateCacheMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.cache.FetchFromCacheMiddleware",
]
CONDITIONAL_GET = "django.middleware.http.ConditionalGetMiddleware"
#: What a browser sends when it navigates to a page (Chrome 120).
NAVIGATION = {
    "HTTP_ACCEPT": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
    "HTTP_SEC_FETCH_DEST": "document",
    "HTTP_SEC_FETCH_MODE": "navigate",
}


@pytest.fixture(autouse=True)
def _tracked(kameleoon: Configure) -> Iterator[None]:
    """The local Data API, and an empty cache before and after each test."""
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def site_cache() -> Iterator[None]:
    with override_settings(MIDDLEWARE=SITE_CACHE):
        yield


def code_of(response: HttpResponse) -> str:
    assert COOKIE in response.cookies, "the response set no visitor code cookie"
    return response.cookies[COOKIE].value


def cache_control(response: HttpResponse) -> set[str]:
    return {part.strip() for part in response.get("Cache-Control", "").split(",") if part}


def returning(code: str) -> Client:
    client = browser()
    client.cookies[COOKIE] = code
    return client


def of_type(events: list[dict[str, Any]], event_type: str) -> list[dict[str, Any]]:
    return [event for event in events if event["eventType"] == event_type]


# -- per-visitor output is never shared --------------------------------------------------------


@pytest.mark.parametrize("path", ["/page/", "/cached/page/"], ids=BOTH_CACHES)
@pytest.mark.usefixtures("site_cache")
def test_each_visitor_gets_the_page_with_its_own_visitor_code(
    data_api: DataApiServer, path: str
) -> None:
    first, second = browser().get(path), browser().get(path)
    code_1, code_2 = code_of(first), code_of(second)
    assert code_1 != code_2
    assert f'<p id="visitor">{code_2}</p>' in second.content.decode(), "another visitor's code"
    assert "private" in cache_control(first) and "private" in cache_control(second)
    pages = of_type(delivered(data_api), "PAGE")
    assert [page["visitorCode"] for page in pages] == [code_1, code_2]
    assert [page["title"] for page in pages] == ["Home", "Home"]


@pytest.mark.parametrize("path", ["/thanks/", "/cached/thanks/"], ids=BOTH_CACHES)
@pytest.mark.usefixtures("site_cache")
def test_a_conversion_in_a_template_is_recorded_for_every_visitor(
    data_api: DataApiServer, path: str
) -> None:
    codes = [code_of(browser().get(path)) for _ in range(3)]
    conversions = of_type(delivered(data_api), "CONVERSION")
    assert sorted(c["visitorCode"] for c in conversions) == sorted(codes)
    assert {c["goalId"] for c in conversions} == {7}


def test_a_view_that_reads_the_visitor_code_is_not_cached(data_api: DataApiServer) -> None:
    first, second = browser().get("/cached/code.json"), browser().get("/cached/code.json")
    assert first.json()["visitor"] == code_of(first)
    assert second.json()["visitor"] == code_of(second) != code_of(first)
    assert "private" in cache_control(second)


# -- pages that are the same for everyone stay cacheable -----------------------------------------


@pytest.mark.parametrize("path", ["/stamped/", "/cached/stamped/"], ids=BOTH_CACHES)
@pytest.mark.usefixtures("site_cache")
def test_a_cached_page_is_tracked_and_never_carries_a_visitor_cookie(
    data_api: DataApiServer, path: str
) -> None:
    """A new visitor's cookie is set on top of the cached page, in a private response; the
    copy in the cache, which a returning visitor gets, has no cookie and stays cacheable."""
    first, second = browser().get(path), browser().get(path)
    again = returning("returning-1").get(path)
    assert first.content == second.content == again.content, "served from the cache"
    assert code_of(first) != code_of(second)
    for new_visitor in (first, second):
        assert "private" in cache_control(new_visitor)
    assert COOKIE not in again.cookies
    assert "private" not in cache_control(again)
    assert "max-age=60" in cache_control(again) or "max-age=600" in cache_control(again)
    pages = of_type(delivered(data_api), "PAGE")
    assert [p["visitorCode"] for p in pages] == [code_of(first), code_of(second), "returning-1"]


@pytest.mark.usefixtures("site_cache")
def test_page_fields_are_the_same_for_everyone_so_the_page_is_cached(
    data_api: DataApiServer,
) -> None:
    """``{% kameleoon_page %}`` renders nothing per visitor: the page is cached, and a cache
    hit (where no template runs) sends a PAGE without the tag's fields; the README says so."""
    first = returning("returning-1").get("/page-fields/")
    second = returning("returning-2").get("/page-fields/")
    assert "private" not in cache_control(first) and "private" not in cache_control(second)
    pages = of_type(delivered(data_api), "PAGE")
    assert (pages[0]["title"], pages[0]["keyPageIndices"]) == ("Fields", [3])
    assert "title" not in pages[1] and "keyPageIndices" not in pages[1]


def test_a_public_response_that_sets_a_cookie_is_made_private_and_said_so(
    data_api: DataApiServer, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``Cache-Control: public`` lets every cache store a response; one that carries a new
    visitor's cookie is made private instead, and the site is told once per path."""
    monkeypatch.setattr(caching, "_warned_paths", set())  # whatever other tests warned about
    with caplog.at_level(logging.WARNING, logger="django_kameleoon"):
        first, second = browser().get("/public/"), browser().get("/public/")
        again = returning("returning-1").get("/public/")
    for new_visitor in (first, second):
        assert code_of(new_visitor)
        assert cache_control(new_visitor) == {"private", "max-age=60"}
    assert COOKIE not in again.cookies
    assert cache_control(again) == {"public", "max-age=60"}
    warnings = [r.getMessage() for r in caplog.records if r.name == "django_kameleoon"]
    assert len(warnings) == 1, warnings
    assert "/public/" in warnings[0] and "public" in warnings[0]
    assert len(of_type(delivered(data_api), "PAGE")) == 3


# -- revisits answered 304 Not Modified ----------------------------------------------------------


CONDITIONAL_VIEWS = [
    pytest.param("/conditional/etag/", {"HTTP_IF_NONE_MATCH": ETAG}, id="etag"),
    pytest.param(
        "/conditional/last-modified/",
        {"HTTP_IF_MODIFIED_SINCE": LAST_MODIFIED.strftime("%a, %d %b %Y %H:%M:%S GMT")},
        id="last_modified",
    ),
    pytest.param("/conditional/condition/", {"HTTP_IF_NONE_MATCH": ETAG}, id="condition"),
]


@pytest.mark.parametrize(("path", "validator"), CONDITIONAL_VIEWS)
def test_a_revisit_answered_304_by_a_view_decorator_is_a_page_view(
    data_api: DataApiServer, path: str, validator: dict[str, str]
) -> None:
    visitor = returning("returning-1")
    assert visitor.get(path, **NAVIGATION).status_code == 200
    assert visitor.get(path, **NAVIGATION, **validator).status_code == 304
    pages = of_type(delivered(data_api), "PAGE")
    assert [page["href"] for page in pages] == [f"http://testserver{path}"] * 2


@pytest.mark.parametrize("ours_first", [False, True], ids=["conditional-get-first", "ours-first"])
def test_a_revisit_answered_304_by_conditional_get_middleware_is_a_page_view(
    data_api: DataApiServer, ours_first: bool
) -> None:
    """Whichever of the two is listed first: one rule for every 304."""
    stack = [OURS, CONDITIONAL_GET] if ours_first else [CONDITIONAL_GET, OURS]
    with override_settings(MIDDLEWARE=stack):
        visitor = returning("returning-1")
        etag = visitor.get("/plain/", **NAVIGATION)["ETag"]
        revisit = visitor.get("/plain/", **NAVIGATION, HTTP_IF_NONE_MATCH=etag)
    assert revisit.status_code == 304
    assert len(of_type(delivered(data_api), "PAGE")) == 2


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({"HTTP_SEC_FETCH_DEST": "image", "HTTP_ACCEPT": "image/*"}, id="image"),
        pytest.param({"HTTP_SEC_FETCH_DEST": "empty", "HTTP_ACCEPT": "*/*"}, id="fetch"),
        pytest.param({"HTTP_ACCEPT": "application/json"}, id="json-no-fetch-metadata"),
        pytest.param({}, id="no-headers"),
    ],
)
def test_a_304_for_anything_but_a_page_is_not_a_page_view(
    data_api: DataApiServer, headers: dict[str, str]
) -> None:
    visitor = returning("returning-1")
    response = visitor.get("/conditional/etag/", HTTP_IF_NONE_MATCH=ETAG, **headers)
    assert response.status_code == 304
    assert delivered(data_api) == []


def test_a_304_without_fetch_metadata_counts_when_it_accepts_html(
    data_api: DataApiServer,
) -> None:
    """Browsers without ``Sec-Fetch-Dest`` (Safari before 16.4) still say they want HTML."""
    response = returning("returning-1").get(
        "/conditional/etag/", HTTP_IF_NONE_MATCH=ETAG, HTTP_ACCEPT=NAVIGATION["HTTP_ACCEPT"]
    )
    assert response.status_code == 304
    assert len(of_type(delivered(data_api), "PAGE")) == 1


@pytest.mark.parametrize(
    "response",
    [
        HttpResponse("<p>", content_type="text/html; charset=utf-8"),
        HttpResponse("x", headers={"content-disposition": "attachment; filename=a.html"}),
        HttpResponse(headers={"Cache-Control": "public, max-age=60"}),
        HttpResponse(status=204),
    ],
    ids=["page", "attachment", "cacheable", "empty"],
)
def test_response_header_reads_as_django_does(response: HttpResponse) -> None:
    for name in ("Content-Type", "Content-Disposition", "Cache-Control", "X-Absent"):
        assert caching.response_header(response, name.lower()) == response.get(name, "")
