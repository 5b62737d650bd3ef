"""Nothing hangs while the API is unreachable (issue 10, item 6): ``flush()`` without a timeout
and the ``sync`` backend's sends give up after ``FLUSH_TIMEOUT``, and say what they could not
deliver.
"""

from __future__ import annotations

import logging
from typing import Any

import pytest

import django_kameleoon
from django_kameleoon.testing import DataApiServer
from tests.support import Configure, returns

OUTAGES = ["refused", "hanging"]


def outage(data_api: DataApiServer, kind: str) -> None:
    if kind == "refused":
        data_api.stop()
    else:
        data_api.delay(60, times=100)  # connections accepted, never answered


@pytest.mark.parametrize("kind", OUTAGES)
def test_flush_without_a_timeout_gives_up_after_flush_timeout(
    kameleoon: Configure, data_api: DataApiServer, kind: str
) -> None:
    kameleoon(FLUSH_TIMEOUT=0.5)
    outage(data_api, kind)
    django_kameleoon.track_conversion("visitor", 3)
    assert returns(django_kameleoon.flush) is False
    assert django_kameleoon.stats()["dropped"] == 0  # still queued: the outage may end
    data_api.stop()
    data_api.reset()
    data_api.start()
    assert django_kameleoon.flush(20)
    assert [e["visitorCode"] for e in data_api.events] == ["visitor"]


@pytest.mark.parametrize("kind", OUTAGES)
def test_the_sync_backend_gives_up_after_flush_timeout(
    kameleoon: Configure,
    data_api: DataApiServer,
    dropped: list[dict[str, Any]],
    caplog: pytest.LogCaptureFixture,
    kind: str,
) -> None:
    kameleoon(BACKEND="sync", FLUSH_TIMEOUT=0.5)
    caplog.set_level(logging.WARNING, logger="django_kameleoon")
    outage(data_api, kind)
    event = returns(lambda: django_kameleoon.track_conversion("visitor", 3))
    assert event is not None
    assert dropped == [{"count": 1, "reason": "flush_timeout"}]
    assert django_kameleoon.stats()["dropped_by_reason"] == {"flush_timeout": 1}
    assert "1 event(s) dropped (flush_timeout): not delivered within FLUSH_TIMEOUT (0.5 s)" in (
        caplog.text
    )
    data_api.reset()  # a hanging request may be recorded, unanswered, when the server stops
