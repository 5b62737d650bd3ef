"""``manage.py kameleoon_check`` against the local Data API: up, down, redirecting."""

from __future__ import annotations

import re
from io import StringIO
from typing import Any

import pytest
from django.core.management import CommandError, call_command

import django_kameleoon
from django_kameleoon.testing import DataApiServer
from tests.support import SITE_CODE, Configure


def check(*, fails: str | None = None) -> str:
    """The command's screen; ``fails``: the CommandError it must end with."""
    out = StringIO()
    if fails is None:
        call_command("kameleoon_check", stdout=out)
    else:
        with pytest.raises(CommandError, match=fails):
            call_command("kameleoon_check", stdout=out)
    return out.getvalue()


def test_everything_in_order(data_api: DataApiServer, kameleoon: Configure) -> None:
    screen = check()
    assert re.search(rf"\n  SITE_CODE +{SITE_CODE!r}\n", screen)
    assert f"POST {data_api.url}/visit/events (siteCode={SITE_CODE}, json)" in screen
    assert "reachable: HTTP 202" in screen
    assert "System checks\n  no problem found" in screen
    for counter in ("queued", "sent", "retried", "dropped", "requests"):
        assert f"  {counter}: 0" in screen
    assert "  dropped_by_reason: none" in screen
    assert "everything checked is in order" in screen
    (event,) = data_api.events
    assert (event["eventType"], event["visitorCode"]) == ("STATICDATA", "kameleoon-test-event")


def test_api_down(data_api: DataApiServer, kameleoon: Configure) -> None:
    data_api.stop()
    screen = check(fails="1 problem found")
    assert "NOT reachable: connection failed" in screen


@pytest.mark.parametrize("status", [301, 302, 307, 308])
def test_a_redirect_is_reported_not_followed(
    data_api: DataApiServer, kameleoon: Configure, status: int
) -> None:
    data_api.fail(status, headers={"Location": data_api.url + "/v2/visit/events"})
    screen = check(fails="1 problem found")
    target = data_api.url + "/v2/visit/events"
    assert f"NOT reachable: HTTP {status} redirect to {target}; fix DATA_API_URL" in screen
    assert len(data_api.requests) == 1, "the redirect was followed"


def test_an_error_answer(data_api: DataApiServer, kameleoon: Configure) -> None:
    data_api.fail(403)
    assert "NOT reachable: HTTP 403 (forbidden" in check(fails="1 problem found")


def test_invalid_settings_are_reported_and_nothing_is_sent(
    data_api: DataApiServer, kameleoon: Configure
) -> None:
    kameleoon(SITE_CODE="", TIMEOUT=-1)
    screen = check(fails="3 problems found")
    assert "django_kameleoon.E001: KAMELEOON['SITE_CODE']" in screen
    assert "django_kameleoon.E008: KAMELEOON['TIMEOUT']" in screen
    assert re.search(r"\n  TIMEOUT +-1\n", screen), "the value as set is shown"
    assert "not tried: the configuration is invalid" in screen
    assert data_api.requests == []


def test_a_warning_is_shown_but_does_not_fail(
    settings: Any, data_api: DataApiServer, kameleoon: Configure
) -> None:
    settings.MIDDLEWARE = [m for m in settings.MIDDLEWARE if "kameleoon" not in m]
    screen = check()
    assert "django_kameleoon.W001" in screen


def test_credentials_in_the_url_are_masked(data_api: DataApiServer, kameleoon: Configure) -> None:
    kameleoon(DATA_API_URL=data_api.url.replace("://", "://deploy:hunter2@"))
    screen = check()
    assert "hunter2" not in screen
    assert "deploy:********@127.0.0.1" in screen


def test_the_counters_of_this_process(data_api: DataApiServer, kameleoon: Configure) -> None:
    kameleoon(BACKEND="locmem")
    django_kameleoon.track("visitor1", "CUSTOMDATA", index=1, valuesCountMap={"a": 1})
    screen = check()
    assert "  sent: 1" in screen


def test_drops_are_counted_by_reason(data_api: DataApiServer, kameleoon: Configure) -> None:
    data_api.fail(400)
    django_kameleoon.track("visitor1", "CUSTOMDATA", index=1, valuesCountMap={"a": 1})
    assert django_kameleoon.flush(5)
    screen = check()
    assert "  dropped: 1" in screen
    assert "  dropped_by_reason: rejected=1" in screen
