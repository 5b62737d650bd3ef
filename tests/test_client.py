"""The Data API client: every answer a server can give is sorted, and none raises."""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st

import django_kameleoon
from django_kameleoon.backends.client import parse_retry_after
from django_kameleoon.testing import DataApiServer
from tests.support import Configure


@given(st.text())
def test_any_retry_after_value_gives_seconds_or_none(value: str) -> None:
    seconds = parse_retry_after(value)
    assert seconds is None or (math.isfinite(seconds) and seconds >= 0)


def test_retry_after_forms() -> None:
    assert parse_retry_after("120") == 120.0
    assert parse_retry_after(" 3 ") == 3.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # in the past
    assert parse_retry_after("9" * 400) == 1e9  # absurd, but a wait: capped by the backoff
    for junk in ("²", "٣", "-1", "1.5", "soon", "", "Wed, 99 Foo 2015", "Wed, 21 Oct 99999 1:1:1"):
        assert parse_retry_after(junk) is None, junk


def test_an_odd_retry_after_on_a_503_is_waited_out_as_an_outage(
    kameleoon: Configure, data_api: DataApiServer
) -> None:
    """``"²".isdigit()`` is true: the header once raised in the sender, and the 503 was then
    counted against MAX_RETRIES instead of being waited out."""
    kameleoon(MAX_RETRIES=0, RETRY_BACKOFF_MAX=0.1)
    data_api.fail(503, times=3, headers={"Retry-After": "²"})
    django_kameleoon.track_conversion("visitor-1", 12)
    assert django_kameleoon.flush(10)
    assert [e["goalId"] for e in data_api.events] == [12]
    assert len(data_api.requests) == 4
