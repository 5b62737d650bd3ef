"""``manage.py kameleoon_send_test_event`` against the local Data API."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from django_kameleoon.testing import DataApiServer
from tests.support import SITE_CODE, Configure

COMMAND = "kameleoon_send_test_event"


def run(*args: str) -> str:
    out = StringIO()
    call_command(COMMAND, *args, stdout=out)
    return out.getvalue()


@pytest.mark.parametrize("body_format", ["json", "query"])
def test_sends_one_staticdata_and_reports_the_answer(
    data_api: DataApiServer, kameleoon: Configure, body_format: str
) -> None:
    kameleoon(BODY_FORMAT=body_format)
    output = run()
    (event,) = data_api.events
    assert (event["eventType"], event["visitorCode"]) == ("STATICDATA", "kameleoon-test-event")
    (request,) = data_api.requests
    assert request.query["siteCode"] == SITE_CODE
    assert f"{data_api.url}/visit/events" in output
    assert "Delivered: HTTP 202" in output


def test_sends_a_conversion_for_a_goal(data_api: DataApiServer, kameleoon: Configure) -> None:
    run("--goal", "5", "--revenue", "9.5", "--visitor-code", "deploy-check")
    (event,) = data_api.events
    assert (event["eventType"], event["visitorCode"]) == ("CONVERSION", "deploy-check")
    assert (event["goalId"], event["revenue"]) == (5, 9.5)


def test_sends_even_when_the_site_uses_another_backend(
    data_api: DataApiServer, kameleoon: Configure
) -> None:
    """The point is to test the network path, so the configured backend is bypassed."""
    kameleoon(BACKEND="locmem")
    run()
    assert len(data_api.events) == 1


@pytest.mark.parametrize("status", [400, 403, 429, 500, 503])
def test_error_answer_fails_the_command(
    data_api: DataApiServer, kameleoon: Configure, status: int
) -> None:
    data_api.fail(status)
    with pytest.raises(CommandError, match=f"Not delivered: HTTP {status}"):
        run()
    assert len(data_api.requests) == 1, "a deployment check does not retry"
    assert data_api.events == []


def test_unreachable_api_fails_the_command(data_api: DataApiServer, kameleoon: Configure) -> None:
    data_api.stop()
    with pytest.raises(CommandError, match="connection failed"):
        run()


def test_bad_visitor_code_fails_before_sending(
    data_api: DataApiServer, kameleoon: Configure
) -> None:
    with pytest.raises(CommandError, match="invalid visitor code"):
        run("--visitor-code", "not a code")
    assert data_api.requests == []


def test_invalid_settings_fail_the_command(data_api: DataApiServer, kameleoon: Configure) -> None:
    kameleoon(SITE_CODE="")
    with pytest.raises(CommandError, match="SITE_CODE"):
        run()
    assert data_api.requests == []


def test_revenue_without_goal_is_refused(data_api: DataApiServer, kameleoon: Configure) -> None:
    with pytest.raises(CommandError, match="--revenue needs --goal"):
        run("--revenue", "3")
    assert data_api.requests == []
