"""KameleoonMiddleware against the local Data API: what a page view sends, and what it must not.

Every test goes through the Django test client (sync) or AsyncClient and the threaded backend
to a real ``DataApiServer``; ``delivered()`` flushes the queue and returns what the server
accepted. The ``data_api`` fixture fails a test whose events broke any rule of the API.
"""

from __future__ import annotations

import logging
import pickle
import time
from collections.abc import Callable
from http.cookies import Morsel
from typing import Any

import pytest
from asgiref.sync import iscoroutinefunction
from django.core.exceptions import DisallowedHost
from django.http import HttpRequest, HttpResponse
from django.test import AsyncClient, Client, RequestFactory, override_settings
from django.utils.http import http_date

import django_kameleoon
from django_kameleoon import decisions
from django_kameleoon.backends import get_backend
from django_kameleoon.conf import get_settings
from django_kameleoon.middleware import (
    KameleoonMiddleware,
    allowed_host,
    full_path,
    locale_language_tag,
)
from django_kameleoon.pageview import _host_allowed
from django_kameleoon.testing import DataApiServer
from django_kameleoon.visitor import renewed_cookie_name, request_state, set_visitor_cookie
from tests.support import (
    ANDROID_PHONE,
    ANDROID_TABLET,
    BINGBOT,
    CHROME,
    COOKIE,
    FIREFOX_LINUX,
    GOOGLEBOT,
    IPAD,
    IPHONE,
    NEW_CODE,
    NOT_PEOPLE,
    PEOPLE,
    SAFARI_MAC,
    SECRET_PAGE,
    SECRET_REFERRER,
    Configure,
    asgi,
    browser,
    delivered,
)
from tests.views import LONG_TITLE

VALID_CODE = "Abc_123-xyz"


@pytest.fixture(autouse=True)
def _tracked(kameleoon: Configure) -> None:
    """Every test here talks to the local Data API through the threaded backend."""


def of_type(events: list[dict[str, Any]], event_type: str) -> list[dict[str, Any]]:
    return [event for event in events if event["eventType"] == event_type]


def only(events: list[dict[str, Any]], event_type: str) -> dict[str, Any]:
    """The one event of a type; fails when there are none or several."""
    matching = of_type(events, event_type)
    assert len(matching) == 1, f"expected one {event_type}, got {events}"
    return matching[0]


def visitor_cookie(response: HttpResponse) -> str:
    assert COOKIE in response.cookies, "the response set no visitor code cookie"
    return response.cookies[COOKIE].value


# -- the acceptance page view ------------------------------------------------------------------


@pytest.mark.parametrize("body_format", ["json", "query"])
def test_desktop_chrome_page_view(
    client: Client, data_api: DataApiServer, kameleoon: Configure, body_format: str
) -> None:
    kameleoon(BODY_FORMAT=body_format)
    response = client.get(
        "/page/?q=shoes&page=2",
        HTTP_USER_AGENT=CHROME,
        HTTP_ACCEPT_LANGUAGE="fr-CH, fr;q=0.9, en;q=0.8",
        HTTP_REFERER="https://www.google.com/search?q=shoes",
    )

    assert response.status_code == 200
    code = visitor_cookie(response)
    assert NEW_CODE.fullmatch(code)
    assert f'<p id="visitor">{code}</p>' in response.content.decode()
    events = delivered(data_api)
    assert len(events) == 2
    page = only(events, "PAGE")
    static = only(events, "STATICDATA")
    assert page["visitorCode"] == static["visitorCode"] == code
    assert page["href"] == "http://testserver/page/?q=shoes&page=2"
    assert page["title"] == "Home"
    assert page["referrerHref"] == "https://www.google.com/search?q=shoes"
    assert "browser" not in static  # Kameleoon's vocabulary: its index instead
    assert static["browserIndex"] == 0
    assert static["browserVersion"] == 120.0
    assert (static["os"], static["osIndex"]) == ("WINDOWS", 0)
    assert static["deviceType"] == "DESKTOP"
    assert static["localeLanguageTag"] == "fr-CH"
    assert [r.event_count for r in data_api.requests] == [2], "both events in one request"


def test_cookie_attributes(client: Client) -> None:
    cookie = client.get("/plain/").cookies[COOKIE]
    assert cookie["path"] == "/"
    assert cookie["max-age"] == 380 * 24 * 60 * 60
    assert cookie["samesite"] == "Lax"
    assert not cookie["secure"]
    assert not cookie["httponly"], "Kameleoon's JavaScript must be able to read it"


@pytest.mark.parametrize(
    ("options", "https"),
    [
        ({}, False),
        ({}, True),
        ({"COOKIE_SECURE": True, "COOKIE_DOMAIN": ".example.com"}, False),
        ({"COOKIE_SECURE": False, "COOKIE_SAMESITE": "Strict", "COOKIE_MAX_AGE": 3600}, True),
        ({"COOKIE_SAMESITE": None, "COOKIE_NAME": "kv", "COOKIE_REFRESH_INTERVAL": 60}, False),
        ({"COOKIE_SAMESITE": "None", "COOKIE_SECURE": True}, True),
    ],
)
def test_the_cookies_are_what_djangos_set_cookie_writes(
    kameleoon: Configure, rf: RequestFactory, options: dict[str, Any], https: bool
) -> None:
    """The middleware copies a template cookie made by Django's ``set_cookie`` (``visitor``):
    its Set-Cookie headers are the ones ``set_cookie`` itself writes, for every setting."""
    kameleoon(**options)
    settings = get_settings()
    request = rf.get("/", secure=https)
    secure = https if settings.COOKIE_SECURE is None else settings.COOKIE_SECURE
    code = request_state(request).visitor_code
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # both made within one second: the same expires date
        now = int(time.time())
        ours, django = HttpResponse(), HttpResponse()
        set_visitor_cookie(request, ours)
        for name, value, max_age, httponly in [
            (settings.COOKIE_NAME, code, settings.COOKIE_MAX_AGE, False),
            (renewed_cookie_name(settings), "1", settings.COOKIE_REFRESH_INTERVAL, True),
        ]:
            django.set_cookie(
                name,
                value,
                max_age=max_age,
                expires=http_date(now + max_age),
                path="/",
                domain=settings.COOKIE_DOMAIN,
                secure=secure,
                httponly=httponly,
                samesite=settings.COOKIE_SAMESITE,
            )
        if int(time.time()) == now:
            break
    headers = [c.output() for c in ours.cookies.values()]
    assert headers == [c.output() for c in django.cookies.values()]
    assert len(headers) == 2


@pytest.mark.parametrize("secure", [False, True])
def test_both_cookies_ask_django_once_whether_the_request_is_secure(
    kameleoon: Configure, rf: RequestFactory, secure: bool
) -> None:
    """``is_secure()`` reads Django's settings (SECURE_PROXY_SSL_HEADER) on every call: the
    visitor cookie and the one that dates it share one answer."""
    kameleoon()
    request = rf.get("/", secure=secure)
    asked = []
    is_secure = request.is_secure
    request.is_secure = lambda: asked.append(1) or is_secure()  # type: ignore[method-assign]
    response = HttpResponse()
    set_visitor_cookie(request, response)
    assert len(asked) == 1
    assert set(response.cookies) == {COOKIE, REFRESHED}
    assert all(bool(cookie["secure"]) is secure for cookie in response.cookies.values())


def test_a_cookie_changed_after_us_is_written_with_the_change(
    kameleoon: Configure, rf: RequestFactory
) -> None:
    """Our cookies write their Set-Cookie line from the template's, made once; a view or a
    middleware that changes an attribute afterwards, or a cache that pickles the response,
    still gets the line Python writes."""
    kameleoon()
    request = rf.get("/")
    response = HttpResponse()
    set_visitor_cookie(request, response)
    cookie = response.cookies[COOKIE]
    line = cookie.OutputString()
    assert line.startswith(f"{COOKIE}={request_state(request).visitor_code}; expires=")
    assert pickle.loads(pickle.dumps(response)).cookies[COOKIE].OutputString() == line
    assert cookie.OutputString(attrs=["path"]) == Morsel.OutputString(cookie, attrs=["path"])
    cookie["path"] = "/shop/"
    cookie["secure"] = True
    changed = cookie.OutputString()
    assert "Path=/shop/" in changed and "Secure" in changed
    assert changed == Morsel.OutputString(cookie)


def test_https_page_view_has_https_href_and_secure_cookie(
    client: Client, data_api: DataApiServer
) -> None:
    response = client.get("/plain/", secure=True)
    assert response.cookies[COOKIE]["secure"]
    assert only(delivered(data_api), "PAGE")["href"] == "https://testserver/plain/"


def test_same_visitor_across_requests(client: Client, data_api: DataApiServer) -> None:
    first = visitor_cookie(client.get("/plain/"))
    second = client.get("/page/")
    assert COOKIE not in second.cookies, "a valid cookie is not set again"
    codes = {event["visitorCode"] for event in delivered(data_api)}
    assert codes == {first}


def test_page_without_tags_is_tracked_without_title(
    client: Client, data_api: DataApiServer
) -> None:
    client.get("/plain/")
    page = only(delivered(data_api), "PAGE")
    assert set(page) == {"visitorCode", "nonce", "eventType", "href"}


@pytest.mark.parametrize("path", ["/xhtml/", "/streaming/"])
def test_other_html_responses_are_pages(client: Client, data_api: DataApiServer, path: str) -> None:
    assert client.get(path).status_code == 200
    assert only(delivered(data_api), "PAGE")["href"] == f"http://testserver{path}"


def test_secret_query_parameters_are_redacted(client: Client, data_api: DataApiServer) -> None:
    client.get(
        "/plain/?token=s3cret&q=shoes&userEmail=a%40b.c",
        HTTP_REFERER="https://mail.example/reset?password=hunter2&lang=fr",
    )
    page = only(delivered(data_api), "PAGE")
    assert page["href"] == "http://testserver/plain/?q=shoes"
    assert page["referrerHref"] == "https://mail.example/reset?lang=fr"


def test_a_referrer_that_is_not_valid_text_is_redacted_then_made_safe(
    client: Client, data_api: DataApiServer
) -> None:
    """Redaction keeps what it keeps as it came (nothing is re-encoded, so nothing fails);
    the lone surrogate left in is then made encodable, as any text we send is."""
    client.get("/plain/", HTTP_REFERER="https://a.example/p?token=x&q=\udcff")
    assert only(delivered(data_api), "PAGE")["referrerHref"] == "https://a.example/p?q=?"


# -- devices and bots ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("user_agent", "device_type", "os", "browser_index"),
    [
        pytest.param(IPHONE, "PHONE", "IOS", 3, id="iphone"),
        pytest.param(IPAD, "TABLET", "IOS", 3, id="ipad"),
        pytest.param(ANDROID_PHONE, "PHONE", "ANDROID", 0, id="android-phone"),
        pytest.param(ANDROID_TABLET, "TABLET", "ANDROID", 0, id="android-tablet"),
        pytest.param(SAFARI_MAC, "DESKTOP", "MAC", 3, id="macos-safari"),
        pytest.param(FIREFOX_LINUX, "DESKTOP", "LINUX", 2, id="linux-firefox"),
    ],
)
def test_device_types(
    client: Client,
    data_api: DataApiServer,
    user_agent: str,
    device_type: str,
    os: str,
    browser_index: int,
) -> None:
    client.get("/page/", HTTP_USER_AGENT=user_agent)
    static = only(delivered(data_api), "STATICDATA")
    assert static["deviceType"] == device_type
    assert static["os"] == os
    assert static["browserIndex"] == browser_index
    assert isinstance(static["browserVersion"], float)


def test_an_os_outside_kameleoons_six_is_left_out(client: Client, data_api: DataApiServer) -> None:
    kaios = "Mozilla/5.0 (Mobile; LYF/F300B; Android; rv:48.0) Gecko/48.0 Firefox/48.0 KAIOS/2.5"
    client.get("/page/", HTTP_USER_AGENT=kaios)
    static = only(delivered(data_api), "STATICDATA")
    assert "os" not in static and "osIndex" not in static
    assert (static["browserIndex"], static["deviceType"]) == (2, "PHONE")


def test_the_names_vocabulary_sends_free_text_families(
    client: Client, data_api: DataApiServer, kameleoon: Configure
) -> None:
    kameleoon(STATICDATA_VOCABULARY="names")
    client.get("/page/", HTTP_USER_AGENT=IPHONE)
    static = only(delivered(data_api), "STATICDATA")
    assert (static["browser"], static["os"]) == ("Mobile Safari", "iOS")
    assert "browserIndex" not in static and "osIndex" not in static
    assert (static["browserVersion"], static["deviceType"]) == (17.1, "PHONE")


@pytest.mark.parametrize("user_agent", NOT_PEOPLE.values(), ids=NOT_PEOPLE.keys())
def test_bots_and_programs_get_their_page_and_send_nothing(
    client: Client, data_api: DataApiServer, user_agent: str
) -> None:
    response = client.get("/page/", HTTP_USER_AGENT=user_agent)
    assert response.status_code == 200
    assert delivered(data_api) == []
    assert data_api.requests == []


def test_a_request_without_a_user_agent_sends_nothing(data_api: DataApiServer) -> None:
    """Django's own test client sends no User-Agent header at all."""
    assert "HTTP_USER_AGENT" not in RequestFactory().get("/page/").META
    assert Client().get("/page/").status_code == 200
    assert delivered(data_api) == []


@pytest.mark.parametrize("user_agent", PEOPLE.values(), ids=PEOPLE.keys())
def test_people_are_tracked(client: Client, data_api: DataApiServer, user_agent: str) -> None:
    client.get("/page/", HTTP_USER_AGENT=user_agent)
    events = delivered(data_api)
    assert sorted(e["eventType"] for e in events) == ["PAGE", "STATICDATA"]
    assert data_api.violations == []


def test_bot_gets_no_cookie_on_untagged_page(client: Client) -> None:
    assert COOKIE not in client.get("/plain/", HTTP_USER_AGENT=GOOGLEBOT).cookies


def test_bots_tracked_when_asked(
    client: Client, data_api: DataApiServer, kameleoon: Configure
) -> None:
    kameleoon(TRACK_BOTS=True)
    client.get("/plain/", HTTP_USER_AGENT=GOOGLEBOT)
    assert len(delivered(data_api)) == 2


@pytest.mark.parametrize("user_agent", [GOOGLEBOT, NOT_PEOPLE["curl"], ""])
def test_a_bot_on_a_thank_you_page_records_no_conversion(
    client: Client, data_api: DataApiServer, conversions: list[dict[str, Any]], user_agent: str
) -> None:
    """{% kameleoon_conversion %} in the page a crawler fetched (Googlebot on the example shop)."""
    assert client.get("/thanks/", HTTP_USER_AGENT=user_agent).status_code == 200
    assert delivered(data_api) == []
    assert conversions == []


@pytest.mark.parametrize("user_agent", [NOT_PEOPLE["python-requests"], NOT_PEOPLE["empty"]])
def test_a_bot_post_to_a_converting_view_records_nothing(
    client: Client, data_api: DataApiServer, user_agent: str
) -> None:
    assert client.post("/buy/", HTTP_USER_AGENT=user_agent).status_code == 302
    assert delivered(data_api) == []


def test_a_bot_conversion_is_recorded_when_bots_are_tracked(
    client: Client, data_api: DataApiServer, kameleoon: Configure
) -> None:
    kameleoon(TRACK_BOTS=True)
    client.post("/buy/", HTTP_USER_AGENT=GOOGLEBOT)
    [conversion] = delivered(data_api)
    assert conversion["goalId"] == 42


def test_a_conversion_for_a_stored_code_is_recorded_whoever_calls(
    data_api: DataApiServer, kameleoon: Configure
) -> None:
    """A webhook or a task has no visitor's request: a code target is not judged."""
    assert django_kameleoon.track_conversion("visitor-1", 12, revenue=3.0) is not None
    [conversion] = delivered(data_api)
    assert (conversion["visitorCode"], conversion["goalId"]) == ("visitor-1", 12)


MONITOR = "Mozilla/5.0 (X11; Linux x86_64) Chrome/131.0.0.0 Safari/537.36 AcmeWatch/2.1"
PARTNER = "Mozilla/5.0 (Linux; Android 14; Pixel 8; wv) PartnerShop/5.2 okhttp/4.12.0"


def test_site_bot_patterns_and_exceptions(
    client: Client, data_api: DataApiServer, kameleoon: Configure
) -> None:
    """The settings change the decision at the next request: the parse cache is keyed on them."""
    client.get("/page/", HTTP_USER_AGENT=MONITOR)
    client.get("/page/", HTTP_USER_AGENT=PARTNER)
    assert len(delivered(data_api)) == 2  # the monitor is a person, the partner app is not
    data_api.reset()
    kameleoon(BOT_PATTERNS=[r"AcmeWatch/"], NOT_BOT_PATTERNS=[r"\bPartnerShop/"])
    client.get("/page/", HTTP_USER_AGENT=MONITOR)
    client.get("/page/", HTTP_USER_AGENT=PARTNER)
    events = delivered(data_api)
    assert len(events) == 2 and {e["browserIndex"] for e in of_type(events, "STATICDATA")} == {5}
    assert (
        django_kameleoon.track(
            RequestFactory().get("/", HTTP_USER_AGENT=MONITOR), "PAGE", href="https://shop.example/"
        )
        is None
    )


# -- the visitor code cookie ---------------------------------------------------------------------


@pytest.mark.parametrize("code", [VALID_CODE, "a", "Z" * 100], ids=["mixed", "one", "hundred"])
def test_valid_cookie_is_kept(client: Client, data_api: DataApiServer, code: str) -> None:
    client.cookies[COOKIE] = code
    response = client.get("/page/")
    assert response.cookies[COOKIE].value == code, "renewed, never replaced"
    assert code in response.content.decode()
    assert {event["visitorCode"] for event in delivered(data_api)} == {code}


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param("a" * 150, id="150-chars"),
        pytest.param("a" * 101, id="101-chars"),
        pytest.param("<script>alert(1)</script>", id="markup"),
        pytest.param('"><img src=x>', id="attribute-breakout"),
        pytest.param("has space", id="space"),
        pytest.param("ünïcödé", id="non-ascii"),
        pytest.param("abc.def", id="dot"),
        pytest.param("", id="empty"),
    ],
)
def test_invalid_cookie_is_replaced(client: Client, data_api: DataApiServer, raw: str) -> None:
    response = client.get("/page/", HTTP_COOKIE=f"{COOKIE}={raw}")
    assert response.status_code == 200
    code = visitor_cookie(response)
    assert NEW_CODE.fullmatch(code)
    assert raw not in response.content.decode() or raw == ""
    assert {event["visitorCode"] for event in delivered(data_api)} == {code}


# -- the cookie slides: a returning visitor's expiry is renewed, at most once a day -------------

REFRESHED = f"{COOKIE}Refreshed"
YEAR_AND_A_BIT = 380 * 24 * 60 * 60


def test_a_returning_visitors_cookie_is_renewed_once_a_day(
    client: Client, data_api: DataApiServer
) -> None:
    client.cookies[COOKIE] = VALID_CODE
    renewed = client.get("/plain/").cookies
    assert renewed[COOKIE].value == VALID_CODE, "the same code, so Kameleoon's JS sees no change"
    assert renewed[COOKIE]["max-age"] == YEAR_AND_A_BIT
    assert renewed[REFRESHED]["max-age"] == 24 * 60 * 60
    assert renewed[REFRESHED]["httponly"], "no script needs the date of the last renewal"
    assert renewed[REFRESHED]["path"] == "/" and renewed[REFRESHED]["samesite"] == "Lax"
    assert client.get("/page/").cookies == {}, "renewed less than a day ago: left alone"
    codes = {event["visitorCode"] for event in delivered(data_api)}
    assert codes == {VALID_CODE}


def test_a_new_visitor_starts_renewed(client: Client) -> None:
    cookies = client.get("/plain/").cookies
    assert set(cookies) == {COOKIE, REFRESHED}
    assert client.get("/plain/").cookies == {}


@pytest.mark.parametrize(
    ("path", "headers"),
    [
        pytest.param("/code.json", {}, id="not-a-page"),
        pytest.param("/public/", {}, id="cacheable-response"),
        pytest.param("/plain/", {"HTTP_SEC_GPC": "1"}, id="no-consent"),
    ],
)
def test_the_cookie_is_renewed_only_on_a_private_page_view_with_consent(
    client: Client, path: str, headers: dict[str, str]
) -> None:
    """A cacheable response stays free of cookies: the next page that is not renews it."""
    client.cookies[COOKIE] = VALID_CODE
    assert client.get(path, **headers).cookies == {}


def test_renewal_can_be_turned_off(client: Client, kameleoon: Configure) -> None:
    kameleoon(COOKIE_REFRESH_INTERVAL=None)
    assert set(client.get("/plain/").cookies) == {COOKIE}
    client.cookies[COOKIE] = VALID_CODE
    assert client.get("/plain/").cookies == {}


def test_the_renewal_interval_is_a_setting(client: Client, kameleoon: Configure) -> None:
    kameleoon(COOKIE_REFRESH_INTERVAL=3600, COOKIE_DOMAIN=".testserver", COOKIE_SECURE=True)
    client.cookies[COOKIE] = VALID_CODE
    renewed = client.get("/plain/").cookies
    assert renewed[REFRESHED]["max-age"] == 3600
    assert renewed[REFRESHED]["domain"] == renewed[COOKIE]["domain"] == ".testserver"
    assert renewed[REFRESHED]["secure"] and renewed[COOKIE]["secure"]


# -- a returning visitor's page view: its visitor checked where its events are made ------------


def returning(client: Client, code: str = VALID_CODE) -> Client:
    """A returning browser: it sends back the code and the cookie that dates it, so its cookie
    needs nothing and the checks of the visitor wait for the sender (``pageview.RawPageView``)."""
    client.cookies[COOKIE] = code
    client.cookies[REFRESHED] = "1"
    return client


def checked_on_the_request(response: HttpResponse) -> bool:
    """Whether the request parsed its User-Agent: the visitor was checked on the request."""
    return hasattr(response.wsgi_request, "_kameleoon_agent")  # type: ignore[attr-defined]


def without_nonces(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in event.items() if k != "nonce"} for event in events]


@pytest.mark.parametrize(
    ("path", "headers", "overrides"),
    [
        pytest.param(
            "/page/?q=shoes&page=2",
            {
                "HTTP_USER_AGENT": CHROME,
                "HTTP_ACCEPT_LANGUAGE": "fr-CH, fr;q=0.9",
                "HTTP_REFERER": "https://www.google.com/search?q=shoes",
            },
            {},
            id="desktop",
        ),
        pytest.param("/page/", {"HTTP_USER_AGENT": CHROME}, {"BODY_FORMAT": "query"}, id="query"),
        pytest.param(
            "/page/", {"HTTP_USER_AGENT": IPHONE}, {"STATICDATA_VOCABULARY": "names"}, id="names"
        ),
        pytest.param(
            "/plain/", {"HTTP_USER_AGENT": ANDROID_TABLET, "secure": True}, {}, id="https"
        ),
        pytest.param("/odd/\u00fc\u4e2d/?\u00e9=\u00e8", {"HTTP_USER_AGENT": CHROME}, {}, id="iri"),
        pytest.param("/odd/a b/?x=%ZZ", {"HTTP_USER_AGENT": CHROME}, {}, id="quoted"),
        pytest.param(SECRET_PAGE, {"HTTP_REFERER": SECRET_REFERRER}, {}, id="redacted"),
        pytest.param("/page/", {"HTTP_USER_AGENT": CHROME}, {"TRACK_PAGES": False}, id="no-page"),
        pytest.param("/page/", {}, {"TRACK_STATICDATA": False}, id="no-staticdata"),
        pytest.param("/page/", {"HTTP_USER_AGENT": GOOGLEBOT}, {"TRACK_BOTS": True}, id="bots"),
        pytest.param("/page/", {"HTTP_USER_AGENT": "ArcGIS Pro 1.2.\u00b2"}, {}, id="odd-ua"),
        pytest.param("/page/", {"HTTP_ACCEPT_LANGUAGE": "x" * 10_000}, {}, id="10kB-lang"),
        pytest.param("/page/", {"HTTP_DNT": "1"}, {}, id="dnt-not-respected"),
    ],
)
def test_a_returning_visitors_page_view_sends_the_same_checked_later(
    client: Client,
    data_api: DataApiServer,
    kameleoon: Configure,
    path: str,
    headers: dict[str, Any],
    overrides: dict[str, Any],
) -> None:
    """Checked on the request (the cookie due for renewal) or in the sender (both cookies),
    the same page view sends the same events."""
    kameleoon(**overrides)
    headers = {"HTTP_USER_AGENT": FIREFOX_LINUX} | headers
    client.cookies[COOKIE] = VALID_CODE
    now = client.get(path, **headers)
    assert now.status_code == 200 and checked_on_the_request(now)
    checked_now = delivered(data_api)
    assert checked_now, "the page view was tracked"
    data_api.reset()
    later = returning(client).get(path, **headers)
    assert later.status_code == 200 and later.cookies == {}
    assert not checked_on_the_request(later), "the visitor was checked on the request"
    assert without_nonces(delivered(data_api)) == without_nonces(checked_now)


@pytest.mark.parametrize(
    ("headers", "overrides"),
    [
        pytest.param({"HTTP_USER_AGENT": GOOGLEBOT}, {}, id="crawler"),
        pytest.param({"HTTP_USER_AGENT": NOT_PEOPLE["curl"]}, {}, id="program"),
        pytest.param({"HTTP_USER_AGENT": ""}, {}, id="empty-user-agent"),
        pytest.param({"HTTP_USER_AGENT": 42}, {}, id="user-agent-not-text"),
        pytest.param(
            {"HTTP_USER_AGENT": MONITOR}, {"BOT_PATTERNS": [r"AcmeWatch/"]}, id="site-bot"
        ),
        pytest.param({"HTTP_USER_AGENT": CHROME, "HTTP_SEC_GPC": " 1 "}, {}, id="gpc"),
        pytest.param({"HTTP_USER_AGENT": CHROME, "HTTP_DNT": "1"}, {"RESPECT_DNT": True}, id="dnt"),
    ],
)
def test_a_returning_bot_or_a_privacy_signal_sends_nothing_checked_later(
    client: Client,
    data_api: DataApiServer,
    kameleoon: Configure,
    headers: dict[str, Any],
    overrides: dict[str, Any],
) -> None:
    """Refused in the sender: nothing sent, nothing counted as dropped (it was never tracked),
    and a flush does not wait for the events the page view could have made."""
    kameleoon(**overrides)
    response = returning(client).get("/page/", **headers)
    assert response.status_code == 200 and response.cookies == {}
    assert not checked_on_the_request(response)
    assert delivered(data_api) == []
    stats = get_backend().stats()
    assert (stats["queued"], stats["dropped"]) == (0, 0)


@override_settings(
    ALLOWED_HOSTS=["testserver"],
    MIDDLEWARE=["django_kameleoon.middleware.KameleoonMiddleware"],
)
@pytest.mark.parametrize("host", ["evil.example", "bad host", "testserver:80@evil.example"])
def test_a_returning_visitors_bad_host_is_not_tracked_checked_later(
    data_api: DataApiServer, caplog: pytest.LogCaptureFixture, host: str
) -> None:
    with caplog.at_level(logging.INFO, logger="django_kameleoon"):
        response = returning(Client()).get("/plain/", HTTP_HOST=host, HTTP_USER_AGENT=CHROME)
        assert response.status_code == 200 and not checked_on_the_request(response)
        assert delivered(data_api) == []
    assert "the request's Host is not allowed" in caplog.text
    assert host not in caplog.text, "the header is not logged"


def test_the_debug_panel_sees_a_returning_visitors_verdicts_on_the_request(
    client: Client, data_api: DataApiServer
) -> None:
    with decisions.recording() as record:
        response = returning(client).get("/page/", HTTP_USER_AGENT=GOOGLEBOT)
    assert checked_on_the_request(response)
    assert (record.page_view, record.events) == ("bot", [])
    with decisions.recording() as record:
        returning(client).get("/page/", HTTP_USER_AGENT=CHROME, HTTP_SEC_GPC="1")
    assert (record.page_view, record.consent_reason) == ("consent", "gpc")


def test_a_consent_callable_is_asked_on_a_returning_visitors_request(
    client: Client, data_api: DataApiServer, kameleoon: Configure
) -> None:
    """The site's callable may need the request (its session, its user): it is never left
    for the sender."""
    kameleoon(CONSENT="tests.consent.by_cookie")
    response = returning(client).get("/page/", HTTP_USER_AGENT=CHROME)
    assert checked_on_the_request(response)
    assert delivered(data_api) == []
    client.cookies["consent"] = "yes"
    assert checked_on_the_request(returning(client).get("/page/", HTTP_USER_AGENT=CHROME))
    assert {event["visitorCode"] for event in delivered(data_api)} == {VALID_CODE}


# -- limits: clipped, not rejected -------------------------------------------------------------


def test_long_title_is_clipped(client: Client, data_api: DataApiServer) -> None:
    response = client.get("/long-title/")
    assert LONG_TITLE in response.content.decode()
    assert only(delivered(data_api), "PAGE")["title"] == LONG_TITLE[:256]


def test_long_path_is_clipped(client: Client, data_api: DataApiServer) -> None:
    path = "/deep/" + "a" * 3000
    assert client.get(path).status_code == 200
    href = only(delivered(data_api), "PAGE")["href"]
    assert len(href) == 2048
    assert href == f"http://testserver{path}"[:2048]


# -- what is not a page view ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        pytest.param("get", "/api/data.json", 200, id="json"),
        pytest.param("get", "/style.css", 200, id="css"),
        pytest.param("get", "/missing/", 404, id="404"),
        pytest.param("get", "/error/", 500, id="500"),
        pytest.param("get", "/redirect/", 302, id="redirect"),
        pytest.param("get", "/no-content/", 204, id="204"),
        pytest.param("post", "/plain/", 200, id="post"),
        pytest.param("head", "/plain/", 200, id="head"),
        pytest.param("get", "/admin/login/", 200, id="admin"),
        pytest.param("get", "/static/app.html", 200, id="static"),
    ],
)
def test_non_pages_send_nothing_and_set_no_cookie(
    data_api: DataApiServer, method: str, path: str, status: int
) -> None:
    client = Client(raise_request_exception=False)
    response = getattr(client, method)(path)
    assert response.status_code == status
    assert COOKIE not in response.cookies
    assert delivered(data_api) == []


def test_an_html_file_sent_as_an_attachment_is_not_a_page(
    client: Client, data_api: DataApiServer
) -> None:
    """``FileResponse(as_attachment=True)``: the browser saves the file, it shows no page."""
    response = client.get("/attachment/")
    assert response["Content-Type"].startswith("text/html")
    assert response["Content-Disposition"].startswith("attachment")
    assert COOKIE not in response.cookies
    assert delivered(data_api) == []


I18N = {
    "ROOT_URLCONF": "tests.urls_i18n",
    "LANGUAGE_CODE": "en",
    "LANGUAGES": [("en", "English"), ("fr", "French"), ("pt-br", "Brazilian Portuguese")],
    "MIDDLEWARE": [
        "django_kameleoon.middleware.KameleoonMiddleware",
        "django.middleware.locale.LocaleMiddleware",
    ],
}


@pytest.mark.parametrize(
    "path", ["/en/admin/login/", "/fr/admin/login/", "/pt-br/admin/login/", "/fr/static/app.html"]
)
def test_the_default_exclusions_hold_under_a_language_prefix(
    data_api: DataApiServer, path: str
) -> None:
    with override_settings(**I18N):
        client = browser()
        assert client.get(path).status_code == 200
        assert client.get("/fr/page/").status_code == 200
    pages = of_type(delivered(data_api), "PAGE")
    assert [page["href"] for page in pages] == ["http://testserver/fr/page/"]


def test_a_path_that_only_looks_like_a_language_prefix_is_tracked(
    client: Client, data_api: DataApiServer
) -> None:
    """Without ``i18n_patterns``, ``/my/`` is no language (Burmese) prefix: the page counts."""
    assert client.get("/my/admin/").status_code == 200
    assert only(delivered(data_api), "PAGE")["href"] == "http://testserver/my/admin/"


def test_custom_exclude_paths_replace_the_defaults(
    client: Client, data_api: DataApiServer, kameleoon: Configure
) -> None:
    kameleoon(EXCLUDE_PATHS=[r"^/plain/", r"\.html$"])
    client.get("/plain/")
    client.get("/static/app.html")
    client.get("/admin/login/")
    pages = of_type(delivered(data_api), "PAGE")
    assert [page["href"] for page in pages] == ["http://testserver/admin/login/"]


def test_track_pages_off_sends_only_staticdata(
    client: Client, data_api: DataApiServer, kameleoon: Configure
) -> None:
    kameleoon(TRACK_PAGES=False)
    client.get("/page/")
    assert [event["eventType"] for event in delivered(data_api)] == ["STATICDATA"]


def test_track_staticdata_off_sends_only_page(
    client: Client, data_api: DataApiServer, kameleoon: Configure
) -> None:
    kameleoon(TRACK_STATICDATA=False)
    client.get("/page/")
    assert [event["eventType"] for event in delivered(data_api)] == ["PAGE"]


def test_tracking_off_sends_nothing_and_sets_no_cookie(
    client: Client, data_api: DataApiServer, kameleoon: Configure
) -> None:
    kameleoon(TRACK_PAGES=False, TRACK_STATICDATA=False)
    assert COOKIE not in client.get("/plain/").cookies
    assert delivered(data_api) == []


def test_code_used_by_a_non_page_is_stored(client: Client, data_api: DataApiServer) -> None:
    """A view that reads the code (for an SDK, say) needs it to last: the cookie is set."""
    response = client.get("/code.json")
    assert response.json()["visitor"] == visitor_cookie(response)
    assert delivered(data_api) == []


# -- conversions ---------------------------------------------------------------------------------


def test_post_conversion_then_redirect(
    client: Client, data_api: DataApiServer, conversions: list[dict[str, Any]]
) -> None:
    client.cookies[COOKIE] = VALID_CODE
    response = client.post("/buy/", {"item": "1"})
    assert response.status_code == 302
    events = delivered(data_api)
    assert len(events) == 1, "a POST sends its conversion and no PAGE"
    conversion = only(events, "CONVERSION")
    assert conversion["visitorCode"] == VALID_CODE
    assert conversion["goalId"] == 42
    assert conversion["revenue"] == 19.99
    assert [(c["visitor_code"], c["goal_id"], c["revenue"]) for c in conversions] == [
        (VALID_CODE, 42, 19.99)
    ]


def test_conversion_of_a_new_visitor_keeps_the_code_through_the_redirect(
    client: Client, data_api: DataApiServer, conversions: list[dict[str, Any]]
) -> None:
    response = client.post("/buy/", follow=True)
    assert response.status_code == 200
    assert response.redirect_chain == [("/thanks/", 302)]
    code = client.cookies[COOKIE].value
    events = delivered(data_api)
    assert {event["visitorCode"] for event in events} == {code}
    goals = sorted((e["goalId"], e["revenue"]) for e in of_type(events, "CONVERSION"))
    assert goals == [(7, 5.5), (42, 19.99)]
    assert only(events, "PAGE")["title"] == "Thank you"
    assert sorted(c["goal_id"] for c in conversions) == [7, 42]


# -- consent -------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/page/", "/thanks/", "/code.json"])
def test_no_consent_sends_nothing_and_sets_no_cookie(
    data_api: DataApiServer, kameleoon: Configure, path: str
) -> None:
    kameleoon(CONSENT="tests.consent.deny")
    client = Client()
    response = client.get(path)
    assert response.status_code == 200
    assert COOKIE not in response.cookies
    assert client.post("/buy/").status_code == 302
    assert delivered(data_api) == []


def test_consent_callable_decides_per_request(
    client: Client, data_api: DataApiServer, kameleoon: Configure
) -> None:
    kameleoon(CONSENT="tests.consent.by_cookie")
    assert COOKIE not in client.get("/plain/").cookies
    assert delivered(data_api) == []
    client.cookies["consent"] = "yes"
    code = visitor_cookie(client.get("/plain/"))
    assert {event["visitorCode"] for event in delivered(data_api)} == {code}


def test_global_privacy_control_means_no_consent(client: Client, data_api: DataApiServer) -> None:
    response = client.get("/page/", HTTP_SEC_GPC="1")
    assert response.status_code == 200
    assert COOKIE not in response.cookies
    assert delivered(data_api) == []


@pytest.mark.parametrize("cookies", ["new", "returning"])
def test_a_privacy_signal_that_is_not_text_is_treated_as_absent(
    client: Client, data_api: DataApiServer, caplog: pytest.LogCaptureFixture, cookies: str
) -> None:
    """Some servers and test clients leave other types in META: no error, as for any header."""
    if cookies == "returning":
        returning(client)
    with caplog.at_level(logging.ERROR, logger="django_kameleoon"):
        assert client.get("/page/", HTTP_SEC_GPC=1, HTTP_DNT=b"1").status_code == 200
    assert len(delivered(data_api)) == 2
    assert caplog.records == []


def test_do_not_track_respected_only_when_asked(
    client: Client, data_api: DataApiServer, kameleoon: Configure
) -> None:
    client.get("/plain/", HTTP_DNT="1")
    assert len(delivered(data_api)) == 2
    kameleoon(RESPECT_DNT=True)
    data_api.reset()
    assert COOKIE not in Client().get("/plain/", HTTP_DNT="1").cookies
    assert delivered(data_api) == []


# -- async ---------------------------------------------------------------------------------------


def test_middleware_is_a_coroutine_function_under_async_get_response() -> None:
    async def get_response(request: HttpRequest) -> HttpResponse:
        return HttpResponse()

    def sync_get_response(request: HttpRequest) -> HttpResponse:
        return HttpResponse()

    assert iscoroutinefunction(KameleoonMiddleware(get_response))
    assert not iscoroutinefunction(KameleoonMiddleware(sync_get_response))


def test_async_client_is_tracked_like_sync(data_api: DataApiServer) -> None:
    client = AsyncClient()
    response = asgi(
        client,
        "get",
        "/page/?via=asgi",
        headers={"user-agent": IPHONE, "accept-language": "de-DE,de;q=0.9"},
    )
    assert response.status_code == 200
    code = visitor_cookie(response)
    events = delivered(data_api)
    assert len(events) == 2
    assert only(events, "PAGE")["href"] == "http://testserver/page/?via=asgi"
    assert only(events, "PAGE")["title"] == "Home"
    static = only(events, "STATICDATA")
    assert (static["deviceType"], static["localeLanguageTag"]) == ("PHONE", "de-DE")
    assert {event["visitorCode"] for event in events} == {code}


def test_async_views_and_conversions(data_api: DataApiServer) -> None:
    client = AsyncClient()
    asgi(client, "get", "/async/page/")
    asgi(client, "post", "/async/buy/")
    asgi(client, "get", "/api/data.json")
    events = delivered(data_api)
    assert sorted(event["eventType"] for event in events) == ["CONVERSION", "PAGE", "STATICDATA"]
    assert only(events, "CONVERSION")["goalId"] == 43
    assert len({event["visitorCode"] for event in events}) == 1, "one visitor, one cookie"


def test_async_bot_and_no_consent(data_api: DataApiServer, kameleoon: Configure) -> None:
    client = AsyncClient()
    assert asgi(client, "get", "/page/", headers={"user-agent": BINGBOT}).status_code == 200
    kameleoon(CONSENT="tests.consent.deny")
    response = asgi(client, "get", "/plain/")
    assert COOKIE not in response.cookies
    assert delivered(data_api) == []


def test_async_consent_callable_may_use_the_orm(
    data_api: DataApiServer, kameleoon: Configure, caplog: pytest.LogCaptureFixture
) -> None:
    """Under ASGI the CONSENT callable runs in a thread, where the ORM is allowed."""
    kameleoon(CONSENT="tests.consent.like_the_orm")
    with caplog.at_level(logging.ERROR, logger="django_kameleoon"):
        response = asgi(AsyncClient(), "get", "/plain/")
        asgi(AsyncClient(), "get", "/code.json")
    assert caplog.records == []
    code = visitor_cookie(response)
    assert [e["visitorCode"] for e in delivered(data_api)] == [code, code]


def test_async_consent_not_asked_for_non_pages(
    data_api: DataApiServer, kameleoon: Configure
) -> None:
    kameleoon(CONSENT="tests.consent.broken")
    response = asgi(AsyncClient(), "get", "/api/data.json")
    assert response.status_code == 200
    assert not hasattr(response.asgi_request, "_kameleoon"), "consent was never asked"


# -- hostile input ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({"HTTP_USER_AGENT": CHROME + " " + "A" * 10_000}, id="10kB-ua"),
        pytest.param({"HTTP_USER_AGENT": "Moz\x00illa\x01/5.0\x7f\x1b[31m"}, id="ua-control"),
        pytest.param({"HTTP_USER_AGENT": "ArcGIS Pro 1.2.\u00b2"}, id="ua-superscript"),
        pytest.param({"HTTP_USER_AGENT": "\udcff\ud800"}, id="ua-surrogates"),
        pytest.param({"HTTP_ACCEPT_LANGUAGE": "x" * 10_000}, id="10kB-lang"),
        pytest.param({"HTTP_ACCEPT_LANGUAGE": "\x00en\r\n"}, id="lang-control"),
        pytest.param({"HTTP_REFERER": "https://a.example/" + "r" * 10_000}, id="10kB-referer"),
        pytest.param({"HTTP_REFERER": "java\x00script:\nalert(1)\udcff"}, id="referer-junk"),
        pytest.param({"HTTP_REFERER": "https://x/?key=\udcff&a=%ZZ&" * 500}, id="referer-query"),
        pytest.param({"HTTP_COOKIE": f"{COOKIE}=\x00\x01; {COOKIE}=x y"}, id="cookie-junk"),
        pytest.param({"HTTP_COOKIE": "=" * 5000 + ";" * 5000}, id="cookie-flood"),
    ],
)
def test_hostile_headers_never_break_the_page(
    client: Client, data_api: DataApiServer, headers: dict[str, str]
) -> None:
    response = client.get("/page/", **headers)
    assert response.status_code == 200
    events = delivered(data_api)
    assert len(events) == 2
    assert len(only(events, "PAGE").get("referrerHref", "")) <= 2048


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("fr-CH, fr;q=0.9, en;q=0.8", "fr-CH"),
        ("en", "en"),
        ("zh-Hant-TW;q=1", "zh-Hant-TW"),
        ("  de-AT  ,de", "de-AT"),
        ("", None),
        ("*", None),
        ("en_US", None),
        ("fr-", None),
        ("-fr", None),
        ("en;q=abc", "en"),
        (";;;,,,", None),
        ("<script>", None),
        ("123", None),
        ("x" * 9, None),
        ("a-" + "-".join(["abcdefgh"] * 4), None),
        ("en-" + "a" * 9, None),
        ("ünï", None),
        ("x" * 10_000, None),
    ],
)
def test_locale_language_tag(header: str, expected: str | None) -> None:
    assert locale_language_tag(header) == expected


@pytest.mark.parametrize(
    "header", ["en_US", "*", ";q=0.5", "<b>", "x" * 10_000, "fr-CH\x00"], ids=str.__len__
)
def test_malformed_accept_language_is_left_out(
    client: Client, data_api: DataApiServer, header: str
) -> None:
    assert client.get("/page/", HTTP_ACCEPT_LANGUAGE=header).status_code == 200
    assert "localeLanguageTag" not in only(delivered(data_api), "STATICDATA")


@pytest.mark.parametrize(
    "path",
    [
        "/odd/%00/..%2f%2e%2e/",
        "/odd/%ff%fe/",
        "/odd/%3Cscript%3E?q=%3C%3E%22%27&x=%00",
        "/odd/\u00fc\u4e2d/?\u00e9=\u00e8",
        "/odd/a;b=c/",
        "/odd/" + "%41" * 2000,
        "/odd//double//slashes/",
    ],
    ids=["traversal", "bad-utf8", "markup", "unicode", "params", "long-escaped", "slashes"],
)
def test_odd_paths_never_break_the_page(client: Client, data_api: DataApiServer, path: str) -> None:
    assert client.get(path).status_code == 200
    href = only(delivered(data_api), "PAGE")["href"]
    assert href.startswith("http://testserver/")  # "/../" segments are resolved by Django
    assert href.isascii() and len(href) <= 2048


@override_settings(ALLOWED_HOSTS=["testserver"])
@pytest.mark.parametrize("host", ["evil.example", "bad host", "x" * 300, "a\x00b", "[::1"])
def test_bad_host_is_answered_by_django_and_not_tracked(data_api: DataApiServer, host: str) -> None:
    """With CommonMiddleware inside ours, Django answers 400 and there is no page view."""
    response = Client(raise_request_exception=False).get("/plain/", HTTP_HOST=host)
    assert response.status_code == 400
    assert COOKIE not in response.cookies
    assert delivered(data_api) == []


@override_settings(
    ALLOWED_HOSTS=["testserver"],
    MIDDLEWARE=["django_kameleoon.middleware.KameleoonMiddleware"],
)
@pytest.mark.parametrize("host", ["evil.example", "bad host"])
def test_bad_host_reaching_us_is_not_tracked(data_api: DataApiServer, host: str) -> None:
    """Nothing else checked the Host: building the href raises DisallowedHost, caught by us."""
    response = Client().get("/plain/", HTTP_HOST=host)
    assert response.status_code == 200
    assert COOKIE not in response.cookies
    assert delivered(data_api) == []


HOST_CASES = [
    # (ALLOWED_HOSTS, DEBUG, USE_X_FORWARDED_HOST, Host, X-Forwarded-Host)
    (["shop.example.com"], False, False, "shop.example.com", None),
    (["shop.example.com"], False, False, "SHOP.example.com:8443", None),
    (["shop.example.com"], False, False, "shop.example.com.", None),
    (["shop.example.com"], False, False, "evil.example", None),
    (["shop.example.com"], False, False, "shop.example.com@evil.example", None),
    ([".example.com"], False, False, "www.example.com", None),
    ([".example.com"], False, False, "example.com", None),
    ([".example.com"], False, False, "example.com.evil.org", None),
    (["*"], False, False, "anything.example:81", None),
    (["*"], False, False, "bad host", None),
    (["[::1]"], False, False, "[::1]:8000", None),
    (["[::1]"], False, False, "[::1", None),
    ([], True, False, "localhost:8000", None),
    ([], True, False, "shop.example.com", None),
    ([], False, False, "localhost", None),
    (["shop.example.com"], False, True, "evil.example", "shop.example.com"),
    (["shop.example.com"], False, True, "shop.example.com", "evil.example"),
    (["shop.example.com"], False, False, "evil.example", "shop.example.com"),
]


@pytest.mark.parametrize(("allowed", "debug", "forwarded", "host", "x_host"), HOST_CASES)
def test_allowed_host_answers_as_django_does(
    allowed: list[str], debug: bool, forwarded: bool, host: str, x_host: str | None
) -> None:
    """``allowed_host`` remembers Django's verdicts; it must give the same one every time,
    including after ``ALLOWED_HOSTS`` changed (the same header, asked again below)."""
    headers = {"HTTP_HOST": host} | ({"HTTP_X_FORWARDED_HOST": x_host} if x_host else {})
    for _ in range(2):
        with override_settings(ALLOWED_HOSTS=allowed, DEBUG=debug, USE_X_FORWARDED_HOST=forwarded):
            request = RequestFactory().get("/", **headers)
            assert _host_or_refusal(allowed_host, request) == _host_or_refusal(
                HttpRequest.get_host, request
            )
        # The same header, once more, under rules that allow nothing: no verdict is stale.
        nothing_allowed = override_settings(ALLOWED_HOSTS=["other.invalid"], DEBUG=False)
        with nothing_allowed, pytest.raises(DisallowedHost):
            allowed_host(RequestFactory().get("/", HTTP_HOST=host))


def _host_or_refusal(
    get_host: Callable[[HttpRequest], str], request: HttpRequest
) -> str | type[Exception]:
    try:
        return get_host(request)
    except DisallowedHost:
        return DisallowedHost


def test_allowed_host_keeps_a_bounded_memory() -> None:
    """A flood of distinct Host headers (each one refused) cannot grow what is remembered."""
    with override_settings(ALLOWED_HOSTS=["shop.example.com"]):
        for n in range(500):
            with pytest.raises(DisallowedHost):
                allowed_host(RequestFactory().get("/", HTTP_HOST=f"h{n}.evil.example"))
    info = _host_allowed.cache_info()
    assert info.currsize <= info.maxsize == 64


@pytest.mark.parametrize(
    "path",
    [
        "/",
        "/shop/shoes/running-42/",
        "/shop/?utm_source=news&q=a+b",
        "/a b/",
        "/odd/%41%2F/",
        "/odd/a;b=c/",
        "/\u00fc\u4e2d/?\u00e9=\u00e8",
        "/q/?next=/x%3Fy&empty=",
        "/keep/:@&+$,-_.!~*'()/",
        "/x/[brackets]/{braces}/|pipe|/",
    ],
)
@pytest.mark.parametrize("script_name", ["", "/prefix"])
def test_full_path_is_djangos(path: str, script_name: str) -> None:
    """``full_path`` skips Django's quoting only where it would change nothing."""
    request = RequestFactory().get(path, SCRIPT_NAME=script_name)
    request.path = script_name + request.path_info
    assert full_path(request) == request.get_full_path()


def test_tracking_error_is_logged_without_visitor_data(
    client: Client, data_api: DataApiServer, kameleoon: Configure, caplog: pytest.LogCaptureFixture
) -> None:
    kameleoon(CONSENT="tests.consent.broken")
    client.cookies[COOKIE] = VALID_CODE
    with caplog.at_level(logging.INFO, logger="django_kameleoon"):
        response = client.get("/plain/", HTTP_USER_AGENT=CHROME)
    assert response.status_code == 200
    assert delivered(data_api) == []
    ours = [r for r in caplog.records if r.name == "django_kameleoon"]
    errors = [r for r in ours if r.levelno >= logging.ERROR]
    assert [r.getMessage() for r in errors] == [
        "Kameleoon: could not track a visitor: the CONSENT callable raised RuntimeError; "
        "such visitors are treated as not consenting"
    ]
    for record in ours:
        if record.levelno >= logging.INFO:
            assert VALID_CODE not in record.getMessage()
            assert record.exc_info is None


def test_backend_failure_never_breaks_the_page(
    client: Client, data_api: DataApiServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from django_kameleoon.backends import get_backend

    def refuse(events: Any) -> None:
        raise RuntimeError("queue exploded")

    monkeypatch.setattr(get_backend(), "send", refuse)
    response = client.get("/page/")
    assert response.status_code == 200
    assert COOKIE in response.cookies, "the code was used and consented to"
