"""The conversion path: ``track_conversion()`` queues the event itself, then notifies receivers.

Revenue must never vanish silently: a conversion is queued whether or not the app is in
``INSTALLED_APPS`` and whatever receivers a site connects, and its fields follow one set of
rules however it was recorded.
"""

from __future__ import annotations

from typing import Any

import pytest
from django.dispatch import receiver

import django_kameleoon
from django_kameleoon import signals
from django_kameleoon.testing import DataApiServer
from tests.support import SITE_CODE, Configure, delivered, run_script


def test_a_conversion_is_delivered_without_the_app_installed(data_api: DataApiServer) -> None:
    """Without ``django_kameleoon`` in INSTALLED_APPS no ``AppConfig.ready`` ever runs."""
    result, _ = run_script(
        """
        django_kameleoon.track_conversion("visitor-1", 12, revenue=59.8)
        assert django_kameleoon.flush(10)
        """,
        {"SITE_CODE": SITE_CODE, "DATA_API_URL": data_api.url},
        installed_apps=(),
    )
    assert result.returncode == 0, result.stderr
    assert [(e["eventType"], e["goalId"], e["revenue"]) for e in data_api.events] == [
        ("CONVERSION", 12, 59.8)
    ]


def test_the_conversion_is_queued_before_receivers_hear_of_it(
    kameleoon: Configure, data_api: DataApiServer
) -> None:
    """A site's receiver that raises neither fails the call nor loses the conversion."""
    queued_before: list[int] = []

    @receiver(signals.conversion)
    def failing(sender: Any, **kwargs: Any) -> None:
        from django_kameleoon.backends import get_backend

        queued_before.append(get_backend().stats()["queued"])
        raise RuntimeError("a site's own receiver is broken")

    try:
        event = django_kameleoon.track_conversion("visitor-1", 12, revenue=5.0)
    finally:
        signals.conversion.disconnect(failing)
    assert event is not None
    assert queued_before == [1]
    assert [e["goalId"] for e in delivered(data_api)] == [12]


def test_sending_the_signal_yourself_is_only_a_notification(
    kameleoon: Configure, data_api: DataApiServer
) -> None:
    """The signal no longer queues: only ``track_conversion`` (or ``track``) does."""
    signals.conversion.send(
        sender=object, visitor_code="visitor-1", goal_id=12, negative="no", request=None
    )
    assert delivered(data_api) == []


@pytest.mark.parametrize("negative", [1, 0, "no", "yes", None])
def test_negative_takes_only_true_or_false_everywhere(
    kameleoon: Configure, data_api: DataApiServer, negative: Any
) -> None:
    with pytest.raises(TypeError):
        django_kameleoon.track_conversion("visitor-1", 12, negative=negative)
    with pytest.raises(TypeError):
        django_kameleoon.track("visitor-1", "CONVERSION", goalId=12, negative=negative or 0)
    assert delivered(data_api) == []


def test_receivers_see_the_values_that_were_queued(
    kameleoon: Configure, data_api: DataApiServer, conversions: list[dict[str, Any]]
) -> None:
    from decimal import Decimal

    django_kameleoon.track_conversion(
        "visitor-1", 12, revenue=Decimal("19.99"), negative=True, metadata={3: ["gold"]}
    )
    (sent,) = delivered(data_api)
    (seen,) = conversions
    assert (seen["goal_id"], seen["revenue"], seen["negative"], seen["metadata"]) == (
        sent["goalId"],
        sent["revenue"],
        sent["negative"],
        {3: ["gold"]},
    )
    assert sent["metadata"] == {"3": ["gold"]} and sent["revenue"] == 19.99
    assert seen["event"].nonce == sent["nonce"]
