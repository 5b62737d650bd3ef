"""The page-view beacon: ``{% kameleoon_beacon %}``, the ``b.gif`` view, ``PAGE_VIEWS``.

Real requests through the test site's whole middleware stack (the test client), events at the
strict local Data API. What a real browser does with the image, through Django's cache and a
caching proxy, is in ``tests/test_beacon_browser.py``.
"""

from __future__ import annotations

import html
import logging
import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from django.core import signing
from django.core.cache import cache
from django.template import Context, Template
from django.test import Client, override_settings
from django.urls import path

from django_kameleoon import beacon, checks
from django_kameleoon.beacon import MARKER, TOKEN_PARAMETER, TRANSPARENT_GIF, read_token
from django_kameleoon.testing import DataApiServer
from django_kameleoon.visitor import has_consent
from tests import views
from tests.support import (
    CHROME,
    COOKIE,
    GOOGLEBOT,
    NEW_CODE,
    SITE_CACHE,
    Configure,
    asgi,
    async_browser,
    browser,
    browser_requests,
    delivered,
)

#: This module is also a URLconf without the beacon's URLs (``ROOT_URLCONF=__name__``).
urlpatterns = [path("beacon/page/", views.beacon_page)]

IMG_RE = re.compile(r"<img [^>]*>")
SRC_RE = re.compile(r'src="([^"]+)"')


@pytest.fixture(autouse=True)
def _auto(kameleoon: Configure) -> Iterator[None]:
    """``PAGE_VIEWS="auto"`` at the local Data API, and an empty cache around each test."""
    kameleoon(PAGE_VIEWS="auto")
    cache.clear()
    yield
    cache.clear()


def image(response: Any) -> str:
    """The page's beacon ``<img>`` tag; fails when there is none."""
    found = IMG_RE.findall(response.content.decode())
    assert len(found) == 1, f"expected one beacon image, found {found}"
    return found[0]


def beacon_src(response: Any) -> str:
    match = SRC_RE.search(image(response))
    assert match
    return html.unescape(match.group(1))


def load(visitor: Client, page: str, **headers: Any) -> tuple[Any, Any]:
    """A browser's load of ``page``: the page, then its image with the page as ``Referer``."""
    shown = visitor.get(page, **headers)
    referer = headers.pop("HTTP_REFERER", f"http://testserver{page}")
    gif = visitor.get(beacon_src(shown), HTTP_REFERER=referer, **headers)
    return shown, gif


def pages(data_api: DataApiServer) -> list[dict[str, Any]]:
    return [e for e in delivered(data_api) if e["eventType"] == "PAGE"]


def assert_gif(response: Any) -> None:
    assert response.status_code == 200
    assert response["Content-Type"] == "image/gif"
    assert response.content == TRANSPARENT_GIF and len(response.content) == 43
    assert response["Cache-Control"] == "no-store"


# -- the tag ------------------------------------------------------------------------------------


def test_the_tag_renders_a_signed_image_of_the_page(client: Client) -> None:
    response = client.get("/beacon/page/?title=Teapot&canonical=1&keys=3,7&token=s3cret")
    tag = image(response)
    for attribute in ('alt=""', 'width="1"', 'height="1"', 'referrerpolicy="same-origin"', MARKER):
        assert attribute in tag
    src = urlsplit(beacon_src(response))
    assert src.path == "/kameleoon/b.gif"
    href, fields = read_token(parse_qs(src.query)[TOKEN_PARAMETER][0])
    # The URL signed in it is redacted like every reported URL: it lands in access logs.
    assert href == "http://testserver/beacon/page/?title=Teapot&canonical=1&keys=3,7"
    assert fields == {
        "title": "Teapot",
        "canonicalHref": "https://example.com/canonical/",
        "keyPageIndices": [3, 7],
    }


def test_the_tag_renders_the_same_for_every_visitor_so_the_page_stays_cacheable(
    client: Client,
) -> None:
    first, second = browser().get("/beacon/page/"), browser().get("/beacon/page/")
    assert image(first) == image(second)
    for response in (first, second):
        assert "private" not in response.get("Cache-Control", "")
        assert COOKIE not in response.cookies, "the page is not the visitor's: the beacon is"


def test_the_tag_renders_nothing_while_the_middleware_counts_pages(kameleoon: Configure) -> None:
    kameleoon(PAGE_VIEWS="middleware")
    assert "<img" not in browser().get("/beacon/page/").content.decode()


def test_the_tag_renders_nothing_when_the_page_already_knows_consent_is_refused(
    client: Client,
) -> None:
    template = Template("{% load kameleoon %}{% kameleoon_beacon %}")
    refused = browser_requests().get("/beacon/page/", HTTP_SEC_GPC="1")
    assert not has_consent(refused)  # what {% kameleoon_script %} asks, say
    assert template.render(Context({"request": refused})) == ""
    unknown = browser_requests().get("/beacon/page/", HTTP_SEC_GPC="1")
    assert MARKER in template.render(Context({"request": unknown})), "the beacon decides"


@override_settings(ROOT_URLCONF=__name__)
def test_without_the_beacons_url_the_tag_renders_nothing_and_says_why(
    caplog: pytest.LogCaptureFixture, data_api: DataApiServer
) -> None:
    with caplog.at_level(logging.ERROR, logger="django_kameleoon"):
        response = browser().get("/beacon/page/")
    assert "<img" not in response.content.decode()
    assert any('include("django_kameleoon.urls")' in r.getMessage() for r in caplog.records)
    assert len(pages(data_api)) == 1, "the middleware counts the page instead"


# -- the view -----------------------------------------------------------------------------------


def test_the_beacon_counts_the_page_once_with_the_browsers_own_details(
    data_api: DataApiServer,
) -> None:
    visitor = browser(HTTP_ACCEPT_LANGUAGE="de-CH,de;q=0.9")
    page = "/beacon/page/?title=Teapot&keys=4&utm_source=news"
    _, gif = load(visitor, page)
    assert_gif(gif)
    code = gif.cookies[COOKIE].value
    assert NEW_CODE.fullmatch(code)
    # No session, no CSRF cookie: the visitor's two cookies only. (No database either: this
    # test may not use one.)
    assert set(gif.cookies) == {COOKIE, f"{COOKIE}Refreshed"}
    events = delivered(data_api)
    assert [e["eventType"] for e in events] == ["STATICDATA", "PAGE"]
    static, page_event = events
    assert {static["visitorCode"], page_event["visitorCode"]} == {code}
    assert static["localeLanguageTag"] == "de-CH" and static["deviceType"] == "DESKTOP"
    assert page_event["href"] == f"http://testserver{page}"
    assert page_event["title"] == "Teapot" and page_event["keyPageIndices"] == [4]
    assert "referrerHref" not in page_event


def test_a_returning_visitor_keeps_their_code(data_api: DataApiServer) -> None:
    visitor = browser()
    visitor.cookies[COOKIE] = "returning-1"
    _, gif = load(visitor, "/beacon/page/")
    assert_gif(gif)
    assert [p["visitorCode"] for p in pages(data_api)] == ["returning-1"]


def test_a_referer_on_another_host_is_not_the_page(data_api: DataApiServer) -> None:
    load(browser(), "/beacon/page/?title=Mine", HTTP_REFERER="https://evil.example/fake?x=1")
    assert [p["href"] for p in pages(data_api)] == ["http://testserver/beacon/page/?title=Mine"]


@pytest.mark.parametrize(
    "token",
    [
        pytest.param("", id="missing"),
        pytest.param("not-a-token", id="garbage"),
        pytest.param(signing.Signer().sign_object({"t": "Forged"}), id="other-salt"),
        pytest.param(
            signing.Signer(key="other", salt="django_kameleoon.beacon").sign_object({"t": "F"}),
            id="other-key",
        ),
        pytest.param("x" * (beacon.MAX_TOKEN_LENGTH + 1), id="too-long"),
    ],
)
def test_a_token_this_site_did_not_sign_tracks_nothing(
    data_api: DataApiServer, caplog: pytest.LogCaptureFixture, token: str
) -> None:
    with caplog.at_level(logging.DEBUG, logger="django_kameleoon"):
        gif = browser().get("/kameleoon/b.gif", {TOKEN_PARAMETER: token})
    assert_gif(gif)
    assert COOKIE not in gif.cookies
    assert delivered(data_api) == []
    assert any("beacon not tracked" in r.getMessage() for r in caplog.records)


def test_a_tampered_token_tracks_nothing(data_api: DataApiServer) -> None:
    src = beacon_src(browser().get("/beacon/page/?title=Real"))
    token = parse_qs(urlsplit(src).query)[TOKEN_PARAMETER][0]
    signature = token.rpartition(":")[2]
    forged = signing.Signer(salt="django_kameleoon.beacon").sign_object({"t": "Forged"})
    tampered = forged.rpartition(":")[0] + ":" + signature
    assert_gif(browser().get("/kameleoon/b.gif", {TOKEN_PARAMETER: tampered}))
    assert delivered(data_api) == []


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({"HTTP_USER_AGENT": GOOGLEBOT}, id="bot"),
        pytest.param({"HTTP_USER_AGENT": ""}, id="no-user-agent"),
        pytest.param({"HTTP_SEC_GPC": "1"}, id="gpc"),
    ],
)
def test_bots_and_refusals_track_nothing_and_get_no_cookie(
    data_api: DataApiServer, headers: dict[str, str]
) -> None:
    visitor = Client(**{"HTTP_USER_AGENT": CHROME, **headers})
    _, gif = load(visitor, "/beacon/page/")
    assert_gif(gif)
    assert COOKIE not in gif.cookies
    assert delivered(data_api) == []


def test_dnt_and_the_sites_consent_are_the_beacons_rules_too(
    kameleoon: Configure, data_api: DataApiServer
) -> None:
    kameleoon(PAGE_VIEWS="auto", RESPECT_DNT=True)
    load(browser(), "/beacon/page/", HTTP_DNT="1")
    kameleoon(PAGE_VIEWS="auto", CONSENT="tests.consent.deny")
    _, gif = load(browser(), "/beacon/page/")
    assert COOKIE not in gif.cookies
    assert delivered(data_api) == []


def test_an_excluded_page_is_not_counted_by_its_beacon(
    kameleoon: Configure, data_api: DataApiServer
) -> None:
    kameleoon(PAGE_VIEWS="auto", EXCLUDE_PATHS=[r"^/beacon/"])
    load(browser(), "/beacon/page/")
    assert delivered(data_api) == []


@pytest.mark.parametrize("method", ["post", "head", "put"])
def test_every_answer_is_the_gif_even_to_other_methods(
    data_api: DataApiServer, method: str
) -> None:
    src = beacon_src(browser().get("/beacon/page/"))
    response = getattr(browser(enforce_csrf_checks=True), method)(src)
    assert response.status_code == 200 and response["Cache-Control"] == "no-store"
    assert delivered(data_api) == []


def test_under_asgi_a_consent_callable_may_use_the_orm(
    kameleoon: Configure, data_api: DataApiServer
) -> None:
    """The view is sync: under ASGI Django runs it in a thread, where the ORM is allowed."""
    kameleoon(PAGE_VIEWS="auto", CONSENT="tests.consent.like_the_orm")
    src = beacon_src(browser().get("/beacon/page/"))
    referer = {"referer": "http://testserver/beacon/page/"}
    assert_gif(asgi(async_browser(), "get", src, headers=referer))
    assert [p["href"] for p in pages(data_api)] == ["http://testserver/beacon/page/"]


@override_settings(KAMELEOON={"SITE_CODE": "bad code"})
def test_a_misconfigured_site_still_answers_the_gif() -> None:
    assert_gif(browser().get("/kameleoon/b.gif", {TOKEN_PARAMETER: "x"}))


def test_while_the_middleware_counts_pages_the_beacon_counts_nothing(
    kameleoon: Configure, data_api: DataApiServer
) -> None:
    src = beacon_src(browser().get("/beacon/page/"))
    kameleoon(PAGE_VIEWS="middleware")
    assert_gif(browser().get(src, HTTP_REFERER="http://testserver/beacon/page/"))
    assert delivered(data_api) == []


# -- counted once -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("page", "middleware", "cached"),
    [
        pytest.param("/beacon/page/", None, False, id="fresh"),
        pytest.param("/beacon/page/", SITE_CACHE, True, id="site-cache"),
        pytest.param("/beacon/cached/", None, True, id="cache_page"),
    ],
)
def test_a_page_with_the_beacon_is_counted_once_fresh_or_from_djangos_cache(
    data_api: DataApiServer, settings: Any, page: str, middleware: list[str] | None, cached: bool
) -> None:
    if middleware:
        settings.MIDDLEWARE = middleware
    visitor = browser()
    first, _ = load(visitor, page)
    second, _ = load(visitor, page)
    assert (first.content == second.content) is cached, "served from Django's cache"
    found = pages(data_api)
    assert len(found) == 2, "one PAGE per load, from the beacon alone"
    assert {p["visitorCode"] for p in found} == {visitor.cookies[COOKIE].value}
    assert {p["title"] for p in found} == {"Beacon page"}


@pytest.mark.parametrize(("mode", "counted"), [("auto", 1), ("beacon", 0), ("middleware", 1)])
def test_a_page_without_the_beacon_is_the_middlewares_unless_only_beacons_count(
    kameleoon: Configure, data_api: DataApiServer, mode: str, counted: int
) -> None:
    kameleoon(PAGE_VIEWS=mode)
    browser().get("/plain/")
    assert len(pages(data_api)) == counted


def test_in_beacon_mode_the_middleware_counts_no_page(
    kameleoon: Configure, data_api: DataApiServer
) -> None:
    kameleoon(PAGE_VIEWS="beacon")
    visitor = browser()
    load(visitor, "/beacon/page/")
    assert len(pages(data_api)) == 1


# -- the system check -----------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["beacon", "auto"])
def test_a_mode_that_needs_the_beacon_warns_when_its_url_is_not_mounted(
    kameleoon: Configure, mode: str
) -> None:
    kameleoon(PAGE_VIEWS=mode)
    assert checks.check_beacon_urls() == []
    with override_settings(ROOT_URLCONF=__name__):
        messages = checks.check_beacon_urls()
    assert [m.id for m in messages] == ["django_kameleoon.W070"]
    assert repr(mode) in messages[0].msg


@override_settings(ROOT_URLCONF=__name__)
def test_the_middleware_mode_needs_no_beacon_url(kameleoon: Configure) -> None:
    kameleoon(PAGE_VIEWS="middleware")
    assert checks.check_beacon_urls() == []
