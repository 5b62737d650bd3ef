"""``KameleoonPanel`` with the real django-debug-toolbar: what it shows for each decision.

Each test makes a request through ``DebugToolbarMiddleware``, then asks the toolbar's own
``render_panel`` view for the panel's content, as the toolbar's JavaScript does.
"""

from __future__ import annotations

import html as html_module
import re
from typing import Any

import pytest
from django.test import Client

from django_kameleoon.decisions import PAGE_VIEW_REASONS
from django_kameleoon.testing import DataApiServer
from tests.support import CHROME, GOOGLEBOT, Configure, async_browser, browser

TOOLBAR_MIDDLEWARE = "debug_toolbar.middleware.DebugToolbarMiddleware"
PANEL = "django_kameleoon.panels.KameleoonPanel"


@pytest.fixture
def toolbar(settings: Any, kameleoon: Configure) -> Configure:
    """The toolbar on every request, with the panel; the test site's URLs and its own."""
    settings.INSTALLED_APPS = [*settings.INSTALLED_APPS, "debug_toolbar"]
    settings.MIDDLEWARE = [TOOLBAR_MIDDLEWARE, *settings.MIDDLEWARE]
    settings.ROOT_URLCONF = "tests.urls_toolbar"
    settings.DEBUG_TOOLBAR_PANELS = [PANEL]
    settings.DEBUG_TOOLBAR_CONFIG = {
        "SHOW_TOOLBAR_CALLBACK": lambda request: True,
        "IS_RUNNING_TESTS": False,
    }
    return kameleoon


def panel(client: Client | None = None) -> str:
    """The panel's HTML for the last request the toolbar saw, as tags-free text lines."""
    from debug_toolbar.store import get_store  # a model module: only once the app is installed

    request_id = list(get_store().request_ids())[-1]
    answer = (client or Client()).get(
        "/__debug__/render_panel/", {"request_id": request_id, "panel_id": "KameleoonPanel"}
    )
    assert answer.status_code == 200
    html = answer.json()["content"]
    return html_module.unescape(re.sub(r"<[^>]+>", " ", html))


def row(text: str, name: str) -> str:
    """The value of a row of the panel (the first one with that name)."""
    found = re.search(rf"\s{re.escape(name)}\s+(.+?)\s{{2,}}", text)
    assert found, f"no row {name!r} in {text!r}"
    return found.group(1).strip()


def test_a_page_view_of_a_new_visitor(toolbar: Configure) -> None:
    response = browser().get("/page/?title=Hello")
    code = response.cookies["kameleoonVisitorCode"].value
    text = panel()
    assert row(text, "visitor code") == code
    assert row(text, "is new") == "yes"
    assert row(text, "counted") == "yes"
    assert row(text, "consent reason") == "default"  # no callable, no signal
    assert "Events queued (2)" in text
    assert "Event 1: STATICDATA" in text and "Event 2: PAGE" in text
    assert '"http://testserver/page/?title=Hello"' in text
    assert '"title"' in text or "title" in text


def test_a_returning_visitor(toolbar: Configure) -> None:
    client = browser()
    client.cookies["kameleoonVisitorCode"] = "returning0visitor"
    client.get("/plain/")
    text = panel()
    assert row(text, "visitor code") == "returning0visitor"
    assert row(text, "is new") == "no"
    assert "returning: read from the visitor cookie" in text


def test_events_are_shown_as_sent_after_redaction(toolbar: Configure) -> None:
    browser().get("/plain/?token=s3cret&q=shoes")
    text = panel()
    assert "s3cret" not in text
    assert "q=shoes" in text


def test_a_post_that_converts_is_no_page_view_but_shows_its_conversion(toolbar: Configure) -> None:
    browser().post("/buy/")
    text = panel()
    assert row(text, "counted") == "no"
    assert row(text, "page view reason") == "method"
    assert "Event 1: CONVERSION" in text
    assert '"goalId"' in text or "goalId" in text
    assert "19.99" in text
    assert row(text, "used by the view") == "yes"


@pytest.mark.parametrize(
    ("path", "headers", "overrides", "reason"),
    [
        ("/api/data.json", {}, {}, "content_type"),
        ("/no-content/", {}, {}, "status"),
        ("/error/", {}, {}, "status"),
        ("/attachment/", {}, {}, "attachment"),
        ("/admin/login/", {}, {}, "excluded_path"),
        ("/plain/", {"HTTP_USER_AGENT": GOOGLEBOT}, {}, "bot"),
        ("/plain/", {}, {"TRACK_PAGES": False, "TRACK_STATICDATA": False}, "tracking_off"),
        ("/plain/", {"HTTP_SEC_GPC": "1"}, {}, "consent"),
        ("/plain/", {}, {"PAGE_VIEWS": "beacon"}, "beacon"),
    ],
)
def test_why_a_request_is_no_page_view(
    toolbar: Configure, path: str, headers: dict[str, str], overrides: dict[str, Any], reason: str
) -> None:
    toolbar(**overrides)
    Client(raise_request_exception=False, **{"HTTP_USER_AGENT": CHROME, **headers}).get(path)
    text = panel()
    assert row(text, "counted") == "no"
    assert row(text, "page view reason") == reason
    assert PAGE_VIEW_REASONS[reason] in text
    assert "Events queued (0)" in text


def test_a_host_not_allowed_is_no_page_view(settings: Any, toolbar: Configure) -> None:
    settings.ALLOWED_HOSTS = ["testserver"]
    # CommonMiddleware would answer 400 before the view: a status, not a page.
    settings.MIDDLEWARE = [m for m in settings.MIDDLEWARE if not m.endswith("CommonMiddleware")]
    browser(HTTP_HOST="evil.example").get("/plain/")
    assert row(panel(), "page view reason") == "host"


@pytest.mark.parametrize(
    ("headers", "overrides", "decision", "reason"),
    [
        ({"HTTP_SEC_GPC": "1"}, {}, "no", "gpc"),
        ({"HTTP_DNT": "1"}, {"RESPECT_DNT": True}, "no", "dnt"),
        ({}, {"CONSENT": "tests.consent.deny"}, "no", "callable"),
        ({}, {"CONSENT": "tests.consent.allow"}, "yes", "callable"),
        ({}, {"CONSENT": "tests.consent.broken"}, "no", "callable_failed"),
        ({}, {}, "yes", "default"),
    ],
)
def test_the_consent_decision_and_why(
    toolbar: Configure,
    headers: dict[str, str],
    overrides: dict[str, Any],
    decision: str,
    reason: str,
) -> None:
    toolbar(**overrides)
    browser(**headers).get("/plain/")
    text = panel()
    assert row(text, "consent") == decision
    assert row(text, "consent reason") == reason


def test_consent_not_asked_when_nothing_needs_it(toolbar: Configure) -> None:
    browser().get("/api/data.json")
    assert "not asked" in panel()


def test_the_process_counters(toolbar: Configure) -> None:
    import django_kameleoon

    browser().get("/plain/")
    assert django_kameleoon.flush(5)
    browser().get("/api/data.json")
    text = panel()
    assert row(text, "sent") == "2"
    assert row(text, "requests") == "1"


def test_drops_by_reason(data_api: DataApiServer, toolbar: Configure) -> None:
    import django_kameleoon

    data_api.fail(400)
    browser().get("/plain/")
    assert django_kameleoon.flush(5)
    browser().get("/api/data.json")
    text = panel()
    assert row(text, "dropped") == "2"
    assert row(text, "dropped_by_reason") == '{"rejected": 2}'


def test_an_async_page_view(toolbar: Configure) -> None:
    from tests.support import asgi

    asgi(async_browser(), "get", "/async/page/")
    text = panel()
    assert row(text, "counted") == "yes"
    assert "Event 2: PAGE" in text


def test_middleware_before_the_toolbar_is_explained(settings: Any, toolbar: Configure) -> None:
    kameleoon_first = [m for m in settings.MIDDLEWARE if m != TOOLBAR_MIDDLEWARE]
    settings.MIDDLEWARE = [kameleoon_first[0], *kameleoon_first[1:]]
    index = settings.MIDDLEWARE.index("django_kameleoon.middleware.KameleoonMiddleware")
    settings.MIDDLEWARE.insert(index + 1, TOOLBAR_MIDDLEWARE)
    browser().get("/plain/")
    assert "comes before DebugToolbarMiddleware" in panel()


def test_nothing_is_recorded_without_the_panel(kameleoon: Configure) -> None:
    from django_kameleoon.decisions import _current

    browser().get("/plain/")
    assert _current.get() is None
