"""A configuration mistake never fails a request: the public functions log it and do nothing.

gunicorn, uvicorn and uWSGI run no system checks, so a deploy with a broken ``KAMELEOON`` serves
pages; whatever a view or a template calls must keep them serving. Each mistake is logged at
ERROR once (again after a minute while it lasts, and anew when the settings change). Wrong
*arguments* still raise at the call: they are the caller's bug, found before any setting is
read. The same under real servers: ``tests/reliability/test_misconfigured_site.py``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import pytest
from django.http import HttpRequest
from django.template import Context, Engine
from django.test import RequestFactory

import django_kameleoon
from django_kameleoon import conf
from django_kameleoon.testing import DataApiServer
from tests.support import (
    COOKIE,
    NEW_CODE,
    SITE_CODE,
    Configure,
    browser,
    delivered,
)

#: Settings mistakes that ``manage.py check`` reports, and words of the message that says so.
BROKEN = [
    pytest.param({"SITE_CODE": ""}, "KAMELEOON['SITE_CODE'] is required", id="no-site-code"),
    pytest.param({"BACKEND": "threadedd"}, "KAMELEOON['BACKEND'] 'threadedd'", id="backend-typo"),
    pytest.param(
        {"BACKEND": "tests.nowhere.Backend"}, "cannot be imported", id="backend-unimportable"
    ),
    pytest.param({"BACKEND": "tests.consent.allow"}, "not a backend class", id="backend-function"),
    pytest.param(
        {"BACKEND": "tests.backends.Unbuildable"}, "RuntimeError", id="backend-fails-to-start"
    ),
]

STATS_ZERO = {
    "queued": 0,
    "sent": 0,
    "retried": 0,
    "dropped": 0,
    "requests": 0,
    "dropped_by_reason": {},
}


@pytest.fixture
def request_(rf: RequestFactory) -> HttpRequest:
    return rf.post("/checkout/")


def errors(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]


@pytest.mark.parametrize(("broken", "says"), BROKEN)
def test_the_public_functions_log_once_and_do_nothing(
    broken: dict[str, Any],
    says: str,
    settings: Any,
    request_: HttpRequest,
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings.KAMELEOON = {"SITE_CODE": SITE_CODE, **broken}
    with caplog.at_level(logging.ERROR, logger="django_kameleoon"):
        for _ in range(3):
            assert django_kameleoon.track_conversion(request_, 12, revenue=1.0) is None
            assert django_kameleoon.track_conversion("visitor-1", 12) is None
            assert django_kameleoon.track(request_, "PAGE", href="https://e.example/") is None
            assert django_kameleoon.flush(timeout=1) is False
            assert django_kameleoon.stats() == STATS_ZERO
            assert NEW_CODE.fullmatch(django_kameleoon.get_visitor_code(request_))
    [message] = errors(caplog)
    assert says in message


def test_the_visitor_code_survives_a_mistake(settings: Any, rf: RequestFactory) -> None:
    """A site stores the code with its orders: it is still read from Kameleoon's cookie."""
    settings.KAMELEOON = {"SITE_CODE": ""}
    request = rf.get("/", HTTP_COOKIE=f"{COOKIE}=returning-1")
    assert django_kameleoon.get_visitor_code(request) == "returning-1"


CALLS: list[Any] = [
    pytest.param(lambda r: django_kameleoon.track_conversion("visitor-1", "12"), id="goal-str"),
    pytest.param(lambda r: django_kameleoon.track_conversion(object(), 12), id="target"),
    pytest.param(lambda r: django_kameleoon.track_conversion("bad code!", 12), id="code"),
    pytest.param(
        lambda r: django_kameleoon.track_conversion(r, 12, revenue=float("nan")), id="revenue"
    ),
    pytest.param(lambda r: django_kameleoon.track(r, "PAGEVIEW"), id="event-type"),
    pytest.param(lambda r: django_kameleoon.track(r, "PAGE", hreff="x"), id="field"),
    pytest.param(lambda r: django_kameleoon.get_visitor_code("visitor-1"), id="visitor-code"),
]


@pytest.mark.parametrize("call", CALLS)
@pytest.mark.parametrize(("broken", "says"), BROKEN[:2])
def test_wrong_arguments_still_raise_whatever_the_settings(
    broken: dict[str, Any],
    says: str,
    settings: Any,
    request_: HttpRequest,
    call: Callable[[HttpRequest], Any],
) -> None:
    settings.KAMELEOON = {"SITE_CODE": SITE_CODE, **broken}
    with pytest.raises((TypeError, ValueError)):
        call(request_)


@pytest.mark.parametrize(("broken", "says"), BROKEN)
def test_every_page_of_a_misconfigured_site_answers(
    broken: dict[str, Any], says: str, settings: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """The checkout of the issue: GET / answered 200, the POST that converts 500."""
    settings.KAMELEOON = {"SITE_CODE": SITE_CODE, **broken}
    client = browser()
    with caplog.at_level(logging.ERROR, logger="django_kameleoon"):
        for _ in range(2):
            assert client.get("/page/").status_code == 200
            assert client.post("/buy/").status_code == 302
            assert client.get("/thanks/").status_code == 200
            assert client.post("/drf/checkout/").status_code == 200
    [message] = errors(caplog)
    assert says in message


TAGS = [
    "{% kameleoon_visitor_code %}",
    "{% kameleoon_page title='x' %}",
    "{% kameleoon_conversion 7 revenue=1.5 %}",
    "{% kameleoon_script %}",
]


@pytest.mark.parametrize("source", TAGS)
def test_template_tags_render_without_failing_even_in_debug(
    source: str, settings: Any, request_: HttpRequest, caplog: pytest.LogCaptureFixture
) -> None:
    settings.KAMELEOON = {"SITE_CODE": SITE_CODE, "BACKEND": "threadedd"}
    engine = Engine(debug=True, libraries={"kameleoon": "django_kameleoon.templatetags.kameleoon"})
    template = engine.from_string("{% load kameleoon %}" + source + "ok")
    with caplog.at_level(logging.ERROR, logger="django_kameleoon"):
        html = [template.render(Context({"request": request_})) for _ in range(2)]
    assert html[0] == html[1] and html[0].endswith("ok")
    assert len(errors(caplog)) == 1


def test_a_wrong_value_in_a_tag_still_raises_in_debug(settings: Any, request_: Any) -> None:
    settings.KAMELEOON = {"SITE_CODE": ""}
    engine = Engine(debug=True, libraries={"kameleoon": "django_kameleoon.templatetags.kameleoon"})
    template = engine.from_string("{% load kameleoon %}{% kameleoon_conversion 'seven' %}")
    with pytest.raises(TypeError):
        template.render(Context({"request": request_}))


def test_a_mistake_is_logged_again_after_the_interval(
    settings: Any, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings.KAMELEOON = {"SITE_CODE": ""}
    monkeypatch.setattr(conf, "MISCONFIGURATION_LOG_INTERVAL", 0.0)
    with caplog.at_level(logging.ERROR, logger="django_kameleoon"):
        django_kameleoon.track_conversion("visitor-1", 12)
        django_kameleoon.track_conversion("visitor-1", 12)
    assert len(errors(caplog)) == 2


def test_each_new_mistake_is_logged(settings: Any, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR, logger="django_kameleoon"):
        for broken in ({"SITE_CODE": ""}, {"SITE_CODE": "a b"}, {"SITE_CODE": ""}):
            settings.KAMELEOON = broken
            django_kameleoon.track_conversion("visitor-1", 12)
            django_kameleoon.track_conversion("visitor-1", 12)
    assert len(errors(caplog)) == 3, "a settings change forgets what was logged"


# -- CONSENT: a path that does not resolve, a callable that fails --------------------------------


@pytest.mark.parametrize("consent", ["tests.consent.nope", "tests.no_such_module.allow"])
def test_an_unresolvable_consent_means_no_consent(
    consent: str,
    kameleoon: Configure,
    data_api: DataApiServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The privacy-safe reading: nobody is tracked, nothing is stored, nothing fails."""
    kameleoon(CONSENT=consent)
    client = browser()
    with caplog.at_level(logging.ERROR, logger="django_kameleoon"):
        for _ in range(2):
            response = client.get("/page/")
            assert response.status_code == 200
            assert COOKIE not in response.cookies
            assert client.post("/buy/").status_code == 302
            assert django_kameleoon.track_conversion(response.wsgi_request, 1) is None
    [message] = errors(caplog)
    assert f"KAMELEOON['CONSENT'] {consent!r} cannot be imported" in message
    assert "not consenting" in message
    assert delivered(data_api) == []


def test_a_consent_callable_that_raises_means_no_consent(
    kameleoon: Configure, data_api: DataApiServer, caplog: pytest.LogCaptureFixture
) -> None:
    kameleoon(CONSENT="tests.consent.broken")
    client = browser()
    with caplog.at_level(logging.ERROR, logger="django_kameleoon"):
        for _ in range(2):
            assert client.post("/buy/").status_code == 302
            assert client.get("/thanks/").status_code == 200
    [message] = errors(caplog)
    assert "CONSENT callable" in message and "RuntimeError" in message
    assert "the consent store is down" not in message, "an exception's text may quote a visitor"
    assert delivered(data_api) == []
