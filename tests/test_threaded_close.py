"""What ``close()`` reports as lost: the signal, the log and ``stats()`` agree."""

from __future__ import annotations

import logging
import re
from typing import Any

import pytest

import django_kameleoon
from django_kameleoon.backends import get_backend
from django_kameleoon.signals import events_dropped
from django_kameleoon.testing import DataApiServer
from tests.conftest import Configure
from tests.reliability.helpers import wait_until


def test_events_in_flight_at_close_are_reported_everywhere(
    kameleoon: Configure, data_api: DataApiServer, caplog: pytest.LogCaptureFixture
) -> None:
    kameleoon(MAX_BATCH_EVENTS=10, FLUSH_INTERVAL=0.01, TIMEOUT=5.0)
    data_api.delay(3.0)
    dropped: list[Any] = []

    def record(sender: Any, events: list[Any], **kwargs: Any) -> None:
        dropped.extend(events)

    events_dropped.connect(record)
    try:
        for i in range(30):
            django_kameleoon.track_conversion(f"visitor-{i}", 12)
        backend = get_backend()
        wait_until(lambda: backend.stats()["queued"] == 20, "a batch in flight", timeout=5)
        caplog.set_level(logging.WARNING, logger="django_kameleoon")
        backend.close(0.2)
    finally:
        events_dropped.disconnect(record)
    (logged,) = [r.getMessage() for r in caplog.records if "lost" in r.getMessage()]
    lost = int(re.search(r"(\d+) event", logged).group(1))  # type: ignore[union-attr]
    assert lost == 30
    assert len(dropped) == 30
    assert sorted(e.visitor_code for e in dropped) == sorted(f"visitor-{i}" for i in range(30))
    assert backend.stats()["dropped"] == 30
