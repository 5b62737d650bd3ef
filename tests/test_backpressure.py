"""Back-pressure outside requests (issue 10): a script or a management command that tracks
faster than the sender delivers waits for room in the queue (up to ``FLUSH_TIMEOUT``) instead
of losing events while the API is up; a request never waits, whatever the queue holds.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

import django_kameleoon
from django_kameleoon.testing import DataApiServer
from tests.support import (
    SITE_CODE,
    Configure,
    asgi,
    async_browser,
    browser,
    returns,
    run_script,
)

BURST = 5000
QUEUE = 1000
BATCH = 100


def test_a_script_tracking_90000_conversions_loses_none(data_api: DataApiServer) -> None:
    result, _ = run_script(
        """
        for i in range(90_000):
            django_kameleoon.track_conversion(f"v{i}", 3)
        print(django_kameleoon.stats())
        """,
        {"SITE_CODE": SITE_CODE, "DATA_API_URL": data_api.url},
    )
    assert result.returncode == 0, result.stderr
    assert "event(s) dropped" not in result.stderr, result.stderr
    assert len(data_api.events) == 90_000 and data_api.duplicates == []


@pytest.mark.parametrize("how", ["wsgi", "asgi", "wsgi without the middleware"])
def test_a_burst_in_a_request_never_waits_and_counts_its_drops(
    kameleoon: Configure, data_api: DataApiServer, settings: Any, how: str
) -> None:
    if how == "wsgi without the middleware":  # Django's request signals mark the request
        settings.MIDDLEWARE = [m for m in settings.MIDDLEWARE if "kameleoon" not in m]
    # If the request waited for room, it would wait far longer than returns() allows.
    kameleoon(MAX_QUEUE_SIZE=QUEUE, MAX_BATCH_EVENTS=BATCH, FLUSH_TIMEOUT=600.0)
    data_api.stop()
    if how == "asgi":
        response = returns(lambda: asgi(async_browser(), "get", f"/async/burst/{BURST}/"))
    else:
        response = returns(lambda: browser().get(f"/burst/{BURST}/"))
    assert response.status_code == 200
    stats = django_kameleoon.stats()
    in_flight = BURST - stats["queued"] - stats["dropped"]
    assert stats["queued"] == QUEUE and 0 <= in_flight <= BATCH, stats
    assert stats["dropped_by_reason"] == {"queue_full": stats["dropped"]}


def test_outside_a_request_the_wait_for_room_is_bounded(
    kameleoon: Configure, data_api: DataApiServer
) -> None:
    """With the API down, a script waits FLUSH_TIMEOUT once, not once per event."""
    kameleoon(MAX_QUEUE_SIZE=100, MAX_BATCH_EVENTS=10, FLUSH_TIMEOUT=0.5)
    data_api.stop()

    def script() -> None:
        for i in range(3000):
            django_kameleoon.track_conversion(f"v{i}", 3)

    returns(script)  # 2,900 events over the bound: far beyond 20 s if each waited 0.5 s
    stats = django_kameleoon.stats()
    assert stats["queued"] == 100
    assert stats["dropped_by_reason"] == {"queue_full": stats["dropped"]}
    assert 3000 - 100 - 10 <= stats["dropped"] <= 3000 - 100


def test_code_in_an_event_loop_never_waits(kameleoon: Configure, data_api: DataApiServer) -> None:
    """A websocket consumer serves no request, but blocking its event loop would stall every
    client it serves: there a full queue drops, as in a request."""
    kameleoon(MAX_QUEUE_SIZE=QUEUE, MAX_BATCH_EVENTS=BATCH, FLUSH_TIMEOUT=600.0)
    data_api.stop()

    async def consumer() -> None:
        for i in range(BURST):
            django_kameleoon.track_conversion(f"ws-{i}", 3)

    returns(lambda: asyncio.run(consumer()))
    stats = django_kameleoon.stats()
    assert stats["queued"] == QUEUE and stats["dropped"] >= BURST - QUEUE - BATCH
