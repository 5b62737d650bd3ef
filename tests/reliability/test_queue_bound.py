"""With the Data API down, the queue holds at most MAX_QUEUE_SIZE events: memory stays flat
however many more are tracked, every overflow is counted, and the log gets one line a minute,
not one per event.
"""

from __future__ import annotations

import gc
import logging
import time
import tracemalloc

import pytest

import django_kameleoon
from django_kameleoon.backends import get_backend
from django_kameleoon.scope import serving_request
from django_kameleoon.testing import DataApiServer
from tests.support import Configure, wait_until

pytestmark = pytest.mark.slow

MAX_QUEUE = 2_000


def track(start: int, count: int) -> None:
    for i in range(start, start + count):
        django_kameleoon.track_conversion(f"visitor-{i}", 9, revenue=4.5, metadata={1: ["m"]})


def traced_after_gc() -> int:
    gc.collect()
    return tracemalloc.get_traced_memory()[0]


def test_memory_stays_bounded_while_the_api_is_down(
    kameleoon: Configure, data_api: DataApiServer, caplog: pytest.LogCaptureFixture
) -> None:
    # A batch larger than the queue and a long interval: the sender never takes events out,
    # so the queue itself is what is measured.
    kameleoon(MAX_QUEUE_SIZE=MAX_QUEUE, MAX_BATCH_EVENTS=5 * MAX_QUEUE, FLUSH_INTERVAL=60.0)
    data_api.stop()
    caplog.set_level(logging.INFO, logger="django_kameleoon")
    track(0, 10)  # warm up: the backend, its thread, caches
    tracemalloc.start()
    try:
        before = traced_after_gc()
        started = time.perf_counter()
        with serving_request():  # as in a request: never waits for room
            track(10, MAX_QUEUE - 10)  # the queue is now exactly full
            queuing = time.perf_counter() - started
            full = traced_after_gc()
            started = time.perf_counter()
            track(MAX_QUEUE, 9 * MAX_QUEUE)  # ten times the bound in all
            overflowing = time.perf_counter() - started
        after = traced_after_gc()
    finally:
        tracemalloc.stop()
    per_event = (full - before) / (MAX_QUEUE - 10)
    growth = after - full
    assert per_event > 0
    # 18,000 more events were tracked; the memory held grew by less than 100 events' worth.
    assert growth < 100 * per_event, (
        f"{growth:,} bytes more after 9x overflow (one queued event: {per_event:,.0f} bytes)"
    )
    stats = get_backend().stats()
    assert stats["queued"] == MAX_QUEUE
    assert stats["dropped"] == 9 * MAX_QUEUE
    assert stats["sent"] == 0
    # Reported by the sender thread, once a minute at most.
    wait_until(lambda: "(queue_full)" in caplog.text, "the full queue logged")
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1, [r.getMessage() for r in warnings]
    assert "dropped (queue_full)" in warnings[0].getMessage()
    # Overflow costs the request path no more than queuing does (per call, with some slack).
    per_overflow, per_queued = overflowing / (9 * MAX_QUEUE), queuing / (MAX_QUEUE - 10)
    assert per_overflow < 2 * per_queued, (
        f"{per_overflow * 1e6:.0f} µs vs {per_queued * 1e6:.0f} µs"
    )
    # Back up: exactly the events that were queued arrive.
    data_api.start()
    assert django_kameleoon.flush(30)
    received = sorted(int(e["visitorCode"].split("-")[1]) for e in data_api.events)
    assert received == list(range(MAX_QUEUE))


def test_the_queue_stays_bounded_while_the_sender_hangs_on_the_api(
    kameleoon: Configure, data_api: DataApiServer
) -> None:
    """Realistic settings: the sender holds one batch in a hanging request, the queue the rest."""
    kameleoon(MAX_QUEUE_SIZE=MAX_QUEUE, MAX_BATCH_EVENTS=500, TIMEOUT=30.0)
    data_api.delay(60, times=1000)
    with serving_request():
        track(0, 10 * MAX_QUEUE)
    stats = get_backend().stats()
    assert stats["queued"] <= MAX_QUEUE
    in_hand = 10 * MAX_QUEUE - stats["queued"] - stats["dropped"]
    assert 0 <= in_hand <= 500, stats  # at most one batch on its way
    data_api.stop()
    data_api.reset()
    data_api.start()
    assert django_kameleoon.flush(30)
    assert len(data_api.events) == stats["queued"] + in_hand
    assert data_api.duplicates == []
