"""Loss is visible (issue 10, item 5; issue 15): every drop has a stable reason code, the same
in ``stats()``, the ``events_dropped`` signal and one grep-able log line; a full queue costs the
request path a count, and is reported by the sender thread; outages are logged as they start
and end.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable, Sequence
from typing import Any

import pytest
from django.test import override_settings

import django_kameleoon
from django_kameleoon.backends import get_backend
from django_kameleoon.backends.delivery import Delivery
from django_kameleoon.backends.reporting import REASONS
from django_kameleoon.backends.threaded import ThreadedBackend
from django_kameleoon.events import Event
from django_kameleoon.scope import serving_request
from django_kameleoon.testing import DataApiServer
from tests.support import SITE_CODE, Configure, run_script, wait_until

DROP_LINE = re.compile(r"django-kameleoon\[(\d+)\]: (\d+) event\(s\) dropped \((\w+)\)")


def drop_lines(text: str) -> list[tuple[int, int, str]]:
    """(pid, count, reason) of every drop line, as a script counting loss would read them."""
    return [(int(p), int(n), r) for p, n, r in DROP_LINE.findall(text)]


def logged(caplog: pytest.LogCaptureFixture) -> str:
    return "\n".join(r.getMessage() for r in caplog.records)


def track(count: int, prefix: str = "v") -> None:
    for i in range(count):
        django_kameleoon.track_conversion(f"{prefix}{i}", 5)


def test_a_full_queue_is_counted_on_the_request_path_and_reported_by_the_sender(
    kameleoon: Configure,
    data_api: DataApiServer,
    dropped: list[dict[str, Any]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    kameleoon(MAX_QUEUE_SIZE=100, MAX_BATCH_EVENTS=50)
    caplog.set_level(logging.INFO, logger="django_kameleoon")
    data_api.stop()
    with serving_request():
        track(5000)
    stats = django_kameleoon.stats()
    # One batch in the sender's hands, the queue full, the rest dropped and counted at once.
    assert stats["queued"] == 100
    assert stats["dropped"] == stats["dropped_by_reason"]["queue_full"] >= 4850
    wait_until(lambda: sum(d["count"] for d in dropped) == stats["dropped"], "the drops signalled")
    # A few signals (one per report), not one per event.
    assert 1 <= len(dropped) <= 5, dropped
    assert {d["reason"] for d in dropped} == {"queue_full"}
    backend = get_backend()
    backend.close(0.1)  # the rest is lost as the process stops
    final = backend.stats()
    lines = drop_lines(logged(caplog))
    assert {pid for pid, _, _ in lines} == {os.getpid()}
    # The log, the signal and stats() agree, reason by reason.
    by_reason: dict[str, int] = {}
    for _, count, reason in lines:
        by_reason[reason] = by_reason.get(reason, 0) + count
    assert by_reason == final["dropped_by_reason"]
    assert sum(d["count"] for d in dropped) == final["dropped"] == sum(by_reason.values())
    assert final["dropped"] == 5000
    assert f"django-kameleoon[{os.getpid()}]: totals: 0 event(s) sent, 5000 dropped" in logged(
        caplog
    )


def test_an_outage_is_logged_at_warning_when_it_starts_and_when_it_ends(
    kameleoon: Configure, data_api: DataApiServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="django_kameleoon")
    data_api.stop()
    track(30)
    wait_until(lambda: "unreachable" in logged(caplog), "the outage logged")
    data_api.start()
    assert django_kameleoon.flush(10)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    pid = f"django-kameleoon[{os.getpid()}]:"
    (start,) = [m for m in warnings if "unreachable" in m]
    (end,) = [m for m in warnings if "reachable again" in m]
    assert start.startswith(pid) and "30 event(s) waiting" in start, start
    assert end.startswith(pid) and re.search(r"after \d+\.\d s; \d+ event\(s\) waiting", end)
    assert len(data_api.events) == 30


def test_a_script_logs_its_totals_at_exit(data_api: DataApiServer) -> None:
    data_api.fail(400)
    result, _ = run_script(
        """
        for i in range(3):
            django_kameleoon.track_conversion(f"v{i}", 3)
        """,
        {"SITE_CODE": SITE_CODE, "DATA_API_URL": data_api.url},
    )
    assert result.returncode == 0, result.stderr
    assert re.search(
        r"django-kameleoon\[\d+\]: totals: 0 event\(s\) sent, 3 dropped \(3 rejected\)",
        result.stderr,
    ), result.stderr
    assert [(n, r) for _, n, r in drop_lines(result.stderr)] == [(3, "rejected")]


# -- every reason code comes from a real scenario ----------------------------------------------


class BrokenDelivery(Delivery):
    """A bug below the sender: delivery raises."""

    def deliver(self, events: Sequence[Event], **kwargs: Any) -> list[Event]:
        raise RuntimeError("a bug")


class BrokenBackend(ThreadedBackend):
    delivery_class = BrokenDelivery


def queue_full(kameleoon: Configure, data_api: DataApiServer) -> None:
    kameleoon(MAX_QUEUE_SIZE=5, FLUSH_INTERVAL=60.0)
    with serving_request():
        track(6)


def shutdown_timeout(kameleoon: Configure, data_api: DataApiServer) -> None:
    data_api.stop()
    track(1)
    get_backend().close(0.2)


def flush_timeout(kameleoon: Configure, data_api: DataApiServer) -> None:
    kameleoon(BACKEND="sync", FLUSH_TIMEOUT=0.3)
    data_api.stop()
    track(1)


def rejected(kameleoon: Configure, data_api: DataApiServer) -> None:
    data_api.fail(400)
    track(1)


def server_error(kameleoon: Configure, data_api: DataApiServer) -> None:
    kameleoon(MAX_RETRIES=0)
    data_api.fail(500)
    track(1)


def oversize(kameleoon: Configure, data_api: DataApiServer) -> None:
    data_api.fail(413)
    track(1)


def redirect(kameleoon: Configure, data_api: DataApiServer) -> None:
    data_api.fail(301, headers={"Location": "https://eu-data.kameleoon.io/visit/events"})
    track(1)


def closed(kameleoon: Configure, data_api: DataApiServer) -> None:
    data_api.stop()
    track(1)
    with override_settings(KAMELEOON={"SITE_CODE": SITE_CODE, "BACKEND": "locmem"}):
        pass


def error(kameleoon: Configure, data_api: DataApiServer) -> None:
    kameleoon(BACKEND=f"{__name__}.BrokenBackend")
    track(1)


SCENARIOS: dict[str, Callable[[Configure, DataApiServer], None]] = {
    f.__name__: f
    for f in (
        queue_full,
        shutdown_timeout,
        flush_timeout,
        rejected,
        server_error,
        oversize,
        redirect,
        closed,
        error,
    )
}


def test_every_reason_code_has_a_scenario() -> None:
    assert tuple(SCENARIOS) == REASONS


@pytest.mark.parametrize("reason", REASONS)
def test_each_reason_code_is_produced_by_its_scenario(
    kameleoon: Configure,
    data_api: DataApiServer,
    dropped: list[dict[str, Any]],
    caplog: pytest.LogCaptureFixture,
    reason: str,
) -> None:
    caplog.set_level(logging.WARNING, logger="django_kameleoon")
    SCENARIOS[reason](kameleoon, data_api)
    wait_until(lambda: len(dropped) == 1, f"a drop for {reason}", details=lambda: str(dropped))
    assert dropped == [{"count": 1, "reason": reason}]
    assert [(n, r) for _, n, r in drop_lines(logged(caplog))] == [(1, reason)]
    data_api.reset()  # a 413 for one small event is not something the stand-in approves of
