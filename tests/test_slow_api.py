"""An API slower than ``TIMEOUT`` (issue 10, item 3): a read timeout after the request was sent
is not an outage. The sender waits longer next time (up to ``READ_TIMEOUT_MAX``), counts it
against ``MAX_RETRIES`` and says so at WARNING, so the same batch is not resent forever.
"""

from __future__ import annotations

import logging
from typing import Any

import pytest

import django_kameleoon
from django_kameleoon.testing import DataApiServer
from tests.support import Configure


def track(count: int) -> None:
    for i in range(count):
        django_kameleoon.track_conversion(f"slow-{i}", 8)


def test_delivery_completes_once_the_grown_read_timeout_suffices(
    kameleoon: Configure, data_api: DataApiServer, caplog: pytest.LogCaptureFixture
) -> None:
    kameleoon(TIMEOUT=0.2, READ_TIMEOUT_MAX=1.6, MAX_BATCH_EVENTS=100, FLUSH_INTERVAL=0.05)
    caplog.set_level(logging.WARNING, logger="django_kameleoon")
    data_api.delay(0.35, times=10_000)  # every answer takes longer than TIMEOUT
    track(1000)
    assert django_kameleoon.flush(30)
    assert sorted(e["visitorCode"] for e in data_api.events) == sorted(
        f"slow-{i}" for i in range(1000)
    )
    stats = django_kameleoon.stats()
    assert stats["dropped"] == 0 and stats["sent"] == 1000
    # Copies of a batch the API accepted after the sender stopped waiting: a few, not a flood.
    # (They carry the same nonces, so the API counts each event once.)
    resent = len(data_api.duplicates)
    assert resent <= 300, f"{resent} duplicates"
    assert len(data_api.requests) <= stats["requests"] <= 1000 // 100 + 3 + 3
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("the Data API is slow: no answer within 0.2 s" in m for m in warnings), warnings


def test_an_api_slower_than_read_timeout_max_costs_max_retries_then_the_batch(
    kameleoon: Configure,
    data_api: DataApiServer,
    dropped: list[dict[str, Any]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    kameleoon(TIMEOUT=0.1, READ_TIMEOUT_MAX=0.2, MAX_RETRIES=2)
    caplog.set_level(logging.WARNING, logger="django_kameleoon")
    data_api.delay(1.5, times=3)
    track(5)
    assert django_kameleoon.flush(10)
    # Three attempts (waiting 0.1, 0.2, 0.2 s), then given up: not resent forever.
    assert len(data_api.wait_for_requests(3)) == 3
    assert dropped == [{"count": 5, "reason": "server_error"}]
    slow = [m for m in (r.getMessage() for r in caplog.records) if "is slow" in m]
    assert [m.split("waiting up to ")[1].split(" s")[0] for m in slow] == ["0.2", "0.2"]
    data_api.reset()  # the stand-in accepted each copy after its delay: not our concern here


def test_a_refused_connection_is_an_outage_waited_out_not_a_retry_spent(
    kameleoon: Configure, data_api: DataApiServer, dropped: list[dict[str, Any]]
) -> None:
    kameleoon(MAX_RETRIES=0, RETRY_BACKOFF_MAX=0.1)
    data_api.stop()
    track(5)
    assert not django_kameleoon.flush(1.0)
    data_api.start()
    assert django_kameleoon.flush(10)
    assert len(data_api.events) == 5 and dropped == []
