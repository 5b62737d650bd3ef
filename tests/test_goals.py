"""``KAMELEOON["GOALS"]``: a site's own signals become conversions, declared in settings."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from django.http import HttpRequest
from django.test import RequestFactory

from django_kameleoon import goals
from django_kameleoon.testing import DataApiServer
from tests import signals as site_signals
from tests.support import COOKIE, Configure, delivered

CODE = "goal-visitor-1"
GOALS = {"tests.signals.order_paid": 12, "tests.signals.newsletter_signup": 3}


@pytest.fixture
def mapped(kameleoon: Configure) -> Iterator[None]:
    """The test site's signals mapped to goals 12 and 3, through the setting alone."""
    kameleoon(GOALS=GOALS)
    yield
    kameleoon()
    assert not site_signals.order_paid.has_listeners(), "receivers outlived the setting"


@pytest.fixture
def request_(rf: RequestFactory) -> HttpRequest:
    request = rf.post("/checkout/")
    request.COOKIES[COOKIE] = CODE
    return request


@pytest.mark.usefixtures("mapped")
def test_signal_with_request_and_revenue(request_: HttpRequest, data_api: DataApiServer) -> None:
    site_signals.order_paid.send(sender=None, request=request_, revenue=Decimal("30.50"))
    (event,) = delivered(data_api)
    assert (event["eventType"], event["visitorCode"]) == ("CONVERSION", CODE)
    assert (event["goalId"], event["revenue"]) == (12, 30.5)


@pytest.mark.usefixtures("mapped")
def test_signal_with_visitor_code_and_no_revenue(data_api: DataApiServer) -> None:
    site_signals.newsletter_signup.send(sender=object, visitor_code="from-a-task", email="x@y")
    (event,) = delivered(data_api)
    assert (event["visitorCode"], event["goalId"]) == ("from-a-task", 3)
    assert "revenue" not in event


@pytest.mark.usefixtures("mapped")
def test_wrapped_request_is_unwrapped(request_: HttpRequest, data_api: DataApiServer) -> None:
    """Django REST framework's Request keeps the HttpRequest as ``_request``."""

    class WrappedRequest:
        _request = request_

    site_signals.order_paid.send(sender=None, request=WrappedRequest())
    (event,) = delivered(data_api)
    assert event["visitorCode"] == CODE


@pytest.mark.usefixtures("mapped")
@pytest.mark.parametrize(
    "kwargs",
    [
        pytest.param({}, id="no-visitor"),
        pytest.param({"request": "not a request"}, id="bad-request"),
        pytest.param({"visitor_code": "<bad code>"}, id="bad-code"),
        pytest.param({"visitor_code": "ok", "revenue": "lots"}, id="bad-revenue"),
        pytest.param({"visitor_code": "ok", "revenue": float("nan")}, id="nan-revenue"),
    ],
)
def test_unusable_signal_is_logged_not_raised(
    data_api: DataApiServer, caplog: pytest.LogCaptureFixture, kwargs: dict[str, Any]
) -> None:
    with caplog.at_level(logging.ERROR, logger="django_kameleoon"):
        site_signals.order_paid.send(sender=None, **kwargs)
    assert "goal 12 not recorded" in caplog.text
    assert "lots" not in caplog.text and "<bad code>" not in caplog.text
    assert delivered(data_api) == []


@pytest.mark.usefixtures("mapped")
def test_no_consent_no_conversion(
    request_: HttpRequest, data_api: DataApiServer, kameleoon: Configure
) -> None:
    kameleoon(GOALS=GOALS, CONSENT="tests.consent.deny")
    site_signals.order_paid.send(sender=None, request=request_, revenue=1.0)
    assert delivered(data_api) == []


def test_changing_the_setting_reconnects(data_api: DataApiServer, kameleoon: Configure) -> None:
    kameleoon(GOALS={"tests.signals.order_paid": 12})
    kameleoon(GOALS={"tests.signals.order_paid": 99})
    site_signals.order_paid.send(sender=None, visitor_code="v1")
    assert [(e["visitorCode"], e["goalId"]) for e in delivered(data_api)] == [("v1", 99)]
    kameleoon()  # (a settings change replaces the backend: deliver first)
    site_signals.order_paid.send(sender=None, visitor_code="v2")
    assert len(delivered(data_api)) == 1


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("tests.signals.no_such_signal", "cannot be imported"),
        ("tests.no_such_module.paid", "cannot be imported"),
        ("tests.signals.not_a_signal", "is a int, not a Django Signal"),
    ],
)
def test_a_bad_path_is_logged_and_the_others_still_record(
    path: str,
    message: str,
    kameleoon: Configure,
    data_api: DataApiServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A typo in one mapping must not take the site down (it stopped every gunicorn worker from
    booting) nor cost the goals mapped correctly; ``manage.py check`` names it (E029)."""
    with caplog.at_level(logging.ERROR, logger="django_kameleoon"):
        kameleoon(GOALS={"tests.signals.order_paid": 1, path: 2})
    [record] = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert f"KAMELEOON['GOALS'] {path!r} {message}" in record.getMessage()
    assert "goal 2 is not recorded" in record.getMessage()
    site_signals.order_paid.send(sender=None, visitor_code="v1")
    assert [e["goalId"] for e in delivered(data_api)] == [1]
    kameleoon()
    assert not site_signals.order_paid.has_listeners()


def test_invalid_settings_connect_nothing(settings: Any) -> None:
    """The system checks report invalid settings; the mapping does not crash over them."""
    settings.KAMELEOON = {"GOALS": {"tests.signals.order_paid": 5}}  # no SITE_CODE
    assert not site_signals.order_paid.has_listeners()


def test_goal_receiver_alone(data_api: DataApiServer, kameleoon: Configure) -> None:
    """A site can connect the receiver itself, e.g. with a sender filter."""
    receiver = goals.goal_receiver(21)
    site_signals.order_paid.connect(receiver, sender=str)
    try:
        site_signals.order_paid.send(sender=int, visitor_code="skipped")
        site_signals.order_paid.send(sender=str, visitor_code="counted", revenue=2)
    finally:
        site_signals.order_paid.disconnect(receiver, sender=str)
    assert [(e["visitorCode"], e["goalId"]) for e in delivered(data_api)] == [("counted", 21)]
