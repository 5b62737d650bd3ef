"""ThreadedBackend, the default: its bounded queue and sender thread, flush(), the delivery at
interpreter exit, and os.fork().

What a batch goes through once the sender has it (formats, retries, refusals) is in
``test_delivery.py``; the same backend under real servers and long outages is in
``reliability/``.
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Sequence
from typing import Any

import pytest

import django_kameleoon
from django_kameleoon.backends import get_backend
from django_kameleoon.backends.delivery import Delivery
from django_kameleoon.backends.threaded import REPORT_INTERVAL, ThreadedBackend
from django_kameleoon.events import Event
from django_kameleoon.scope import serving_request
from django_kameleoon.signals import events_dropped
from django_kameleoon.testing import DataApiServer
from tests.support import SITE_CODE, Configure, run_script, wait_until

# -- the queue and the request path ------------------------------------------------------------


@pytest.mark.parametrize("outage", ["down", "slow"])
def test_calls_never_wait_on_the_api(
    kameleoon: Configure, data_api: DataApiServer, outage: str
) -> None:
    kameleoon(TIMEOUT=5.0)
    if outage == "down":
        data_api.stop()
    else:
        data_api.delay(3.0)
    django_kameleoon.track_conversion("warm-up", 1)
    started = time.perf_counter()
    for i in range(500):
        django_kameleoon.track_conversion(f"v{i}", 1, revenue=1.5)
    elapsed = time.perf_counter() - started
    assert elapsed < 0.5, f"500 calls took {elapsed:.3f} s"
    if outage == "down":
        data_api.start()
    assert django_kameleoon.flush(20)
    assert len(data_api.events) == 501


def test_a_full_queue_drops_new_events_and_counts_them(
    kameleoon: Configure, data_api: DataApiServer, dropped: list[dict[str, Any]]
) -> None:
    kameleoon(MAX_QUEUE_SIZE=100, FLUSH_INTERVAL=60.0, MAX_BATCH_EVENTS=1000)
    started = time.monotonic()
    with serving_request():  # a request never waits for room
        for i in range(150):
            django_kameleoon.track_conversion(f"v{i}", 5)
    elapsed = time.monotonic() - started
    stats = get_backend().stats()
    assert stats["queued"] == 100 and stats["dropped"] == 50
    assert stats["dropped_by_reason"] == {"queue_full": 50}
    # Signalled by the sender thread, off the request path, not once per event: once when it
    # starts (the first event starts it, the loop may still be dropping) and at most once a
    # REPORT_INTERVAL after that.
    wait_until(lambda: sum(d["count"] for d in dropped) == 50, "the drops signalled")
    assert {d["reason"] for d in dropped} == {"queue_full"}
    assert len(dropped) <= 2 + int(elapsed / REPORT_INTERVAL), dropped
    assert django_kameleoon.flush(10)
    assert len(data_api.events) == 100


# -- flush() and the sender thread -------------------------------------------------------------


def test_an_api_down_for_longer_than_the_retries_still_gets_everything(
    kameleoon: Configure, data_api: DataApiServer
) -> None:
    kameleoon(MAX_RETRIES=0, RETRY_BACKOFF_MAX=0.1)
    data_api.stop()
    for i in range(50):
        django_kameleoon.track_conversion(f"v{i}", 5)
    assert not django_kameleoon.flush(1.0)  # down for a second: nothing can arrive
    data_api.start()
    assert django_kameleoon.flush(10)
    assert len(data_api.events) == 50


class DyingDelivery(Delivery):
    """Kills the thread it runs on, once, with an exception that is not an ``Exception``."""

    deaths = 1

    def deliver(self, events: Sequence[Event], **kwargs: Any) -> list[Event]:
        if DyingDelivery.deaths > 0:
            DyingDelivery.deaths -= 1
            raise SystemExit("the sender thread dies")
        return super().deliver(events, **kwargs)


class DyingSenderBackend(ThreadedBackend):
    delivery_class = DyingDelivery


def test_a_killed_sender_thread_is_restarted_and_loses_nothing(
    kameleoon: Configure, data_api: DataApiServer, caplog: pytest.LogCaptureFixture
) -> None:
    DyingDelivery.deaths = 1
    kameleoon(BACKEND=f"{__name__}.DyingSenderBackend", FLUSH_INTERVAL=60.0)
    caplog.set_level(logging.INFO, logger="django_kameleoon")
    codes = [f"dying-{i}" for i in range(10)]
    for code in codes:
        django_kameleoon.track_conversion(code, 4)
    assert django_kameleoon.flush(30)  # wakes the sender, which dies, and restarts
    assert sorted(e["visitorCode"] for e in data_api.events) == sorted(codes)
    assert get_backend().stats()["dropped"] == 0
    assert DyingDelivery.deaths == 0
    messages = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert any("SystemExit" in m for m in messages), messages


# -- close(): what is lost is reported, the same events everywhere -----------------------------


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
    (logged,) = [r.getMessage() for r in caplog.records if "(shutdown_timeout)" in r.getMessage()]
    lost = int(re.search(r"(\d+) event", logged).group(1))  # type: ignore[union-attr]
    assert lost == 30
    assert len(dropped) == 30
    assert sorted(e.visitor_code for e in dropped) == sorted(f"visitor-{i}" for i in range(30))
    assert backend.stats()["dropped"] == 30


# -- interpreter exit: what is queued is delivered, promptly -----------------------------------


def test_a_script_that_exits_without_flush_delivers_everything(data_api: DataApiServer) -> None:
    result, elapsed = run_script(
        """
        for i in range(200):
            django_kameleoon.track_conversion(f"v{i}", 3, revenue=1.0)
        """,
        {"SITE_CODE": SITE_CODE, "DATA_API_URL": data_api.url},
    )
    assert result.returncode == 0, result.stderr
    assert sorted(e["visitorCode"] for e in data_api.events) == sorted(f"v{i}" for i in range(200))
    assert elapsed < 5, f"the script took {elapsed:.1f} s to exit"


# -- os.fork(): the child starts its own sender and forgets the parent's queue, which the parent
# -- still delivers; nothing arrives twice.


def test_a_forked_child_sends_its_own_events_and_not_its_parents(
    kameleoon: Configure, data_api: DataApiServer
) -> None:
    kameleoon(FLUSH_INTERVAL=60.0)
    django_kameleoon.track_conversion("parent", 1)  # starts the sender; stays queued
    pid = os.fork()
    if pid == 0:  # the child: exits without atexit, like a prefork worker
        code = 1
        try:
            django_kameleoon.track_conversion("child", 2)
            code = 0 if django_kameleoon.flush(10) else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    # Made after the fork, like the child's: the two must not share a nonce.
    django_kameleoon.track_conversion("parent", 3)
    assert django_kameleoon.flush(10)
    assert sorted((e["visitorCode"], e["goalId"]) for e in data_api.events) == [
        ("child", 2),
        ("parent", 1),
        ("parent", 3),
    ]
    assert data_api.duplicates == []
