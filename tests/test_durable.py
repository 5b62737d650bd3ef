"""The durable backends in one process: the Tasks framework's ImmediateBackend, the system
checks of both backends, and the worker-side delivery's outcomes (real local Data API).

The real brokers, workers and servers are in ``tests/reliability/test_durable_*.py``.
"""

from __future__ import annotations

from typing import Any

import pytest
from django.core.checks import ERROR, WARNING, run_checks
from django.test import override_settings

import django_kameleoon
from django_kameleoon import tasks
from django_kameleoon.backends import get_backend
from django_kameleoon.backends.worker import deliver_batch
from django_kameleoon.events import Event, make_event
from django_kameleoon.testing import DataApiServer
from tests.support import Configure

TASKS_BACKEND = "django_kameleoon.backends.tasks.TasksBackend"
CELERY_BACKEND = "django_kameleoon.backends.celery.CeleryBackend"


def durable_ids(**kameleoon: Any) -> list[tuple[str | None, int]]:
    with override_settings(KAMELEOON={"SITE_CODE": "abc", **kameleoon}):
        messages = run_checks()
    return [(m.id, m.level) for m in messages if m.id and m.id[-3:-1] == "06"]


def test_an_event_keeps_its_nonce_through_the_queue() -> None:
    event = make_event("visitor-1", "CONVERSION", {"goalId": 3, "revenue": 2.5})
    again = Event.from_dict(event.as_dict())
    assert again.as_dict() == event.as_dict()
    assert again.to_json() == event.to_json()


def test_immediate_tasks_backend_delivers(kameleoon: Configure, data_api: DataApiServer) -> None:
    kameleoon(BACKEND=TASKS_BACKEND)
    codes = [f"immediate-{n}" for n in range(30)]
    for code in codes:
        django_kameleoon.track_conversion(code, 5)
    assert django_kameleoon.flush(10)
    assert sorted(e["visitorCode"] for e in data_api.wait_for_events(30)) == sorted(codes)
    stats = get_backend().stats()
    assert (stats["sent"], stats["dropped"], stats["queued"]) == (30, 0, 0)


def test_inline_handoff_publishes_inside_send(
    kameleoon: Configure, data_api: DataApiServer
) -> None:
    """The ImmediateBackend runs the task as it is enqueued: with ``inline``, the events are
    delivered by the time track_conversion returns, with no flush."""
    kameleoon(BACKEND=TASKS_BACKEND, HANDOFF="inline", FLUSH_INTERVAL=60.0)
    django_kameleoon.track_conversion("inline-1", 5)
    assert [e["visitorCode"] for e in data_api.events] == ["inline-1"]


def test_worker_delivery_hands_an_outage_back_with_its_delay(
    kameleoon: Configure, data_api: DataApiServer
) -> None:
    kameleoon(MAX_RETRIES=1)
    payload = [make_event(f"w-{n}", "CONVERSION", {"goalId": 1}).as_dict() for n in range(3)]
    data_api.fail(503, headers={"Retry-After": "7"})
    later = deliver_batch(payload)
    assert later is not None and later.events == payload and later.delay == 7
    assert (later.failures, later.counted) == (1, 0), "an outage is not what MAX_RETRIES counts"
    data_api.fail(500)
    later = deliver_batch(payload, failures=later.failures, counted=later.counted)
    assert later is not None and (later.failures, later.counted) == (2, 1)
    data_api.fail(500)
    assert deliver_batch(payload, failures=2, counted=1) is None, "MAX_RETRIES=1: given up"
    assert data_api.events == []
    assert deliver_batch(payload) is None
    assert [e["nonce"] for e in data_api.events] == [e["nonce"] for e in payload]


def test_the_task_retries_in_place_when_its_backend_cannot_defer(
    kameleoon: Configure, data_api: DataApiServer
) -> None:
    kameleoon(RETRY_BACKOFF_MAX=0.05)
    payload = [make_event("retry-1", "CONVERSION", {"goalId": 1}).as_dict()]
    data_api.fail(503, times=2)
    task: Any = tasks.deliver_batch_task
    task.call(payload)
    assert [e["visitorCode"] for e in data_api.events] == ["retry-1"]


def test_checks_of_the_tasks_backend() -> None:
    assert durable_ids(BACKEND=TASKS_BACKEND) == [("django_kameleoon.W060", WARNING)]
    assert durable_ids(BACKEND=TASKS_BACKEND, TASKS_BACKEND="nowhere") == [
        ("django_kameleoon.E067", ERROR)
    ]


def test_checks_of_the_celery_backend() -> None:
    """The suite's settings make no Celery app: Celery's fallback app is not set up."""
    assert durable_ids(BACKEND=CELERY_BACKEND) == [("django_kameleoon.E065", ERROR)]
    assert durable_ids() == []


def test_a_backend_whose_framework_is_not_set_up_fails_no_request(
    kameleoon: Configure, data_api: DataApiServer, caplog: pytest.LogCaptureFixture
) -> None:
    kameleoon(BACKEND=CELERY_BACKEND)
    django_kameleoon.track_conversion("nowhere-1", 5)  # logged, not raised
    assert "no Celery app is set up" in caplog.text
