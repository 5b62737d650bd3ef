"""``django_kameleoon.stats()``: one shape for every backend, counting what happened."""

from __future__ import annotations

import io

import pytest

import django_kameleoon
from django_kameleoon.backends import get_backend
from django_kameleoon.testing import DataApiServer
from tests.support import Configure

COUNTS = {"queued", "sent", "retried", "dropped", "requests"}
EMPTY = {**dict.fromkeys(COUNTS, 0), "dropped_by_reason": {}}


@pytest.mark.parametrize(
    ("backend", "requests"), [("threaded", 1), ("sync", 2), ("locmem", 0), ("console", 0)]
)
def test_every_backend_reports_the_same_counters(
    kameleoon: Configure,
    data_api: DataApiServer,
    capsys: pytest.CaptureFixture[str],
    backend: str,
    requests: int,
) -> None:
    kameleoon(BACKEND=backend)
    assert django_kameleoon.stats() == EMPTY
    django_kameleoon.track_conversion("visitor-1", 12)
    django_kameleoon.track_conversion("visitor-2", 12)
    assert django_kameleoon.flush(5)
    assert django_kameleoon.stats() == {
        "queued": 0,
        "sent": 2,
        "retried": 0,
        "dropped": 0,
        "requests": requests,
        "dropped_by_reason": {},
    }


def test_a_closed_backend_is_replaced_by_a_fresh_one(kameleoon: Configure) -> None:
    """``lifecycle.deliver_pending`` closes backends when a worker stops; later events still go
    somewhere rather than into a queue nobody sends."""
    kameleoon(BACKEND="console")
    first = get_backend()
    first.close()
    assert first.closed
    second = get_backend()
    assert second is not first and not second.closed
    second.stream = io.StringIO()  # type: ignore[attr-defined]
    django_kameleoon.track_conversion("visitor-1", 12)
    assert django_kameleoon.stats()["sent"] == 1
