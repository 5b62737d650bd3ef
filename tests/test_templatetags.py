"""The ``{% load kameleoon %}`` tags: what they render, what they send, and how they fail.

Pages go through the middleware to the local Data API (``kameleoon`` fixture). Failure modes
are rendered on two engines: one in debug mode (errors raise, as the Python API does) and one
not (errors are logged and the tag renders nothing).
"""

from __future__ import annotations

import logging
from typing import Any

import pytest
from django.http import HttpRequest
from django.template import Context, Engine, TemplateSyntaxError
from django.test import Client, RequestFactory
from django.utils.translation import gettext_lazy

from django_kameleoon.testing import DataApiServer
from tests.support import COOKIE, SITE_CODE, Configure, delivered

LIBRARIES = {"kameleoon": "django_kameleoon.templatetags.kameleoon"}
CODE = "tag-visitor-1"


@pytest.fixture(autouse=True)
def _tracked(kameleoon: Configure) -> None:
    """Every test here talks to the local Data API through the threaded backend."""


def render(source: str, context: dict[str, Any], *, debug: bool = False) -> str:
    engine = Engine(debug=debug, libraries=LIBRARIES)
    return engine.from_string("{% load kameleoon %}" + source).render(Context(context))


@pytest.fixture
def request_(rf: RequestFactory) -> HttpRequest:
    """A request from a returning visitor, as the middleware would see it."""
    request = rf.get("/somewhere/")
    request.COOKIES[COOKIE] = CODE
    return request


# -- kameleoon_visitor_code --------------------------------------------------------------------


def test_visitor_code_renders_the_cookie_code(request_: HttpRequest) -> None:
    assert render("{% kameleoon_visitor_code %}", {"request": request_}) == CODE


def test_visitor_code_matches_the_new_cookie(client: Client) -> None:
    response = client.get("/page/")
    assert f'<p id="visitor">{response.cookies[COOKIE].value}</p>' in response.content.decode()


def test_visitor_code_can_be_stored_in_a_variable(request_: HttpRequest) -> None:
    source = "{% kameleoon_visitor_code as code %}[{{ code }}]"
    assert render(source, {"request": request_}) == f"[{CODE}]"


# -- kameleoon_page ------------------------------------------------------------------------------


def test_page_fields_reach_the_page_event(client: Client, data_api: DataApiServer) -> None:
    response = client.get("/page/?title=Shoes+%26+boots&canonical=1&keys=3,7")
    assert response.status_code == 200
    page = next(e for e in delivered(data_api) if e["eventType"] == "PAGE")
    assert page["title"] == "Shoes & boots"
    assert page["canonicalHref"] == "https://example.com/canonical/"
    assert page["keyPageIndices"] == [3, 7]


def test_page_tag_renders_nothing_and_fills_the_state(request_: HttpRequest) -> None:
    source = "{% kameleoon_page title=t canonical_href=c key_page_indices=k %}"
    context = {"request": request_, "t": "x" * 300, "c": "https://e.example/", "k": [1, 2]}
    assert render(source, context) == ""
    page = request_._kameleoon.page  # type: ignore[attr-defined]
    assert page == {
        "title": "x" * 256,
        "canonicalHref": "https://e.example/",
        "keyPageIndices": [1, 2],
    }


@pytest.mark.parametrize(
    ("value", "expected"), [("5", [5]), (" 1, 2 ,", [1, 2]), (9, [9]), ((4, 5), [4, 5])]
)
def test_key_page_indices_forms(request_: HttpRequest, value: Any, expected: list[int]) -> None:
    render("{% kameleoon_page key_page_indices=k %}", {"request": request_, "k": value})
    assert request_._kameleoon.page == {"keyPageIndices": expected}  # type: ignore[attr-defined]


def test_later_page_tag_overrides_field_by_field(request_: HttpRequest) -> None:
    render(
        '{% kameleoon_page title="Base" canonical_href="https://a/" %}'
        '{% kameleoon_page title="Child" %}',
        {"request": request_},
    )
    page = request_._kameleoon.page  # type: ignore[attr-defined]
    assert page == {"title": "Child", "canonicalHref": "https://a/"}


def test_lazy_translated_title(request_: HttpRequest) -> None:
    render("{% kameleoon_page title=t %}", {"request": request_, "t": gettext_lazy("Home")})
    assert request_._kameleoon.page == {"title": "Home"}  # type: ignore[attr-defined]


# -- kameleoon_conversion ------------------------------------------------------------------------


def test_conversion_tag_sends_a_conversion(request_: HttpRequest, data_api: DataApiServer) -> None:
    source = "{% kameleoon_conversion 7 revenue=5.5 %}{% kameleoon_conversion goal negative=True %}"
    assert render(source, {"request": request_, "goal": 8}) == ""
    conversions = sorted(delivered(data_api), key=lambda e: e["goalId"])
    assert [(e["visitorCode"], e["goalId"]) for e in conversions] == [(CODE, 7), (CODE, 8)]
    assert conversions[0]["revenue"] == 5.5
    assert conversions[1]["negative"] is True


def test_conversion_tag_respects_consent(
    request_: HttpRequest, data_api: DataApiServer, kameleoon: Configure
) -> None:
    kameleoon(CONSENT="tests.consent.deny")
    assert render("{% kameleoon_conversion 7 %}", {"request": request_}) == ""
    assert delivered(data_api) == []


# -- kameleoon_script ----------------------------------------------------------------------------


def test_script_tag(request_: HttpRequest) -> None:
    html = render("{% kameleoon_script %}", {"request": request_})
    assert html == f'<script src="https://{SITE_CODE}.kameleoon.eu/kameleoon.js" async></script>'


def test_script_tag_without_request_and_with_nonce() -> None:
    html = render("{% kameleoon_script nonce=n %}", {"n": 'abc"><x'})
    assert html == (
        f'<script src="https://{SITE_CODE}.kameleoon.eu/kameleoon.js" '
        'nonce="abc&quot;&gt;&lt;x" async></script>'
    )


def test_script_tag_renders_nothing_without_consent(
    request_: HttpRequest, kameleoon: Configure
) -> None:
    kameleoon(CONSENT="tests.consent.deny")
    assert render("{% kameleoon_script %}", {"request": request_}) == ""


# -- failures ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "source",
    [
        "{% kameleoon_page colour='red' %}",
        "{% kameleoon_page 'positional' %}",
        "{% kameleoon_conversion %}",
        "{% kameleoon_conversion 1 2 %}",
        "{% kameleoon_conversion 1 price=3 %}",
        "{% kameleoon_visitor_code 1 %}",
        "{% kameleoon_script 'x' %}",
    ],
)
def test_malformed_tags_fail_at_compile_time(source: str) -> None:
    with pytest.raises(TemplateSyntaxError):
        Engine(libraries=LIBRARIES).from_string("{% load kameleoon %}" + source)


BAD_VALUES = [
    pytest.param("{% kameleoon_conversion 'seven' %}", TypeError, id="goal-str"),
    pytest.param("{% kameleoon_conversion 7 revenue='lots' %}", TypeError, id="revenue-str"),
    pytest.param("{% kameleoon_conversion 7 revenue=inf %}", ValueError, id="revenue-inf"),
    pytest.param("{% kameleoon_conversion 7 negative='yes' %}", TypeError, id="negative-str"),
    pytest.param("{% kameleoon_conversion 7 key='' %}", ValueError, id="key-empty"),
    pytest.param("{% kameleoon_page key_page_indices='a,b' %}", ValueError, id="indices-text"),
    pytest.param("{% kameleoon_page key_page_indices=inf %}", TypeError, id="indices-float"),
    pytest.param("{% kameleoon_page title=3 %}", TypeError, id="title-int"),
]


@pytest.mark.parametrize(("source", "error"), BAD_VALUES)
def test_bad_values_raise_in_debug(
    request_: HttpRequest, source: str, error: type[Exception]
) -> None:
    with pytest.raises(error):
        render(source, {"request": request_, "inf": float("inf")}, debug=True)


@pytest.mark.parametrize(("source", "error"), BAD_VALUES)
def test_bad_values_are_logged_in_production(
    request_: HttpRequest,
    data_api: DataApiServer,
    caplog: pytest.LogCaptureFixture,
    source: str,
    error: type[Exception],
) -> None:
    with caplog.at_level(logging.WARNING, logger="django_kameleoon"):
        html = render(source + "ok", {"request": request_, "inf": float("inf")})
    assert html == "ok"
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert [r.getMessage().split(": ")[-1] for r in warnings] == [error.__name__]
    state = getattr(request_, "_kameleoon", None)
    assert state is None or state.page == {}, "a value that failed set no PAGE field"
    assert delivered(data_api) == []


@pytest.mark.parametrize(
    "source",
    [
        "{% kameleoon_visitor_code %}",
        "{% kameleoon_page title='x' %}",
        "{% kameleoon_conversion 7 %}",
    ],
)
def test_tags_without_request(
    source: str, data_api: DataApiServer, caplog: pytest.LogCaptureFixture
) -> None:
    """A configuration mistake (the W004 check names it): logged, never raised, even in debug."""
    with caplog.at_level(logging.ERROR, logger="django_kameleoon"):
        assert render(source, {}, debug=True) == ""
        assert render(source, {}) == ""
    [record] = caplog.records
    assert "context_processors.request" in record.getMessage()
    assert delivered(data_api) == []


def test_bad_value_on_a_live_page_keeps_the_page(client: Client, data_api: DataApiServer) -> None:
    """The site's engine follows DEBUG (False here): a bad value costs only its own field."""
    response = client.get("/page/?keys=x,y")
    assert response.status_code == 200
    page = next(e for e in delivered(data_api) if e["eventType"] == "PAGE")
    assert page["title"] == "Home"
    assert "keyPageIndices" not in page
