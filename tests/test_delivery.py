"""Delivery to a real local Data API: formats, batching, retries, refusals and timing."""

from __future__ import annotations

import json
from typing import Any

import pytest

import django_kameleoon
from django_kameleoon.backends import get_backend
from django_kameleoon.events import EVENT_TYPES, make_event
from django_kameleoon.signals import events_delivered
from django_kameleoon.testing import DataApiServer
from tests.support import FULL_EVENTS, SITE_CODE, Configure


def expected(event_type: str, visitor_code: str) -> dict[str, Any]:
    """An event as the API reads it back: JSON object keys are strings."""
    fields = json.loads(
        json.dumps(make_event(visitor_code, event_type, FULL_EVENTS[event_type]).fields)
    )
    return {"visitorCode": visitor_code, "eventType": event_type, **fields}


def without_nonce(event: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in event.items() if k != "nonce"}


@pytest.mark.parametrize("body_format", ["json", "query"])
def test_every_event_type_arrives_intact(
    kameleoon: Configure, data_api: DataApiServer, body_format: str
) -> None:
    kameleoon(BODY_FORMAT=body_format)
    for event_type in EVENT_TYPES:
        django_kameleoon.track(f"visitor-{event_type}", event_type, **FULL_EVENTS[event_type])
    assert django_kameleoon.flush(10)
    received = {e["eventType"]: without_nonce(e) for e in data_api.events}
    assert received == {t: expected(t, f"visitor-{t}") for t in EVENT_TYPES}
    request = data_api.requests[-1]
    assert request.query["siteCode"] == SITE_CODE
    assert request.body_format == body_format
    assert request.headers["User-Agent"].startswith("django-kameleoon/")


def test_invalid_calls_raise_before_anything_is_queued(
    kameleoon: Configure, data_api: DataApiServer
) -> None:
    with pytest.raises(TypeError):
        django_kameleoon.track_conversion("visitor", "42")
    with pytest.raises(ValueError):
        django_kameleoon.track_conversion("visitor", 42, revenue=float("nan"))
    with pytest.raises(TypeError):
        django_kameleoon.track_conversion("visitor", 42, metadata={"x": ["y"]})
    with pytest.raises(ValueError):
        django_kameleoon.track("visitor", "NOPE")
    with pytest.raises(ValueError):
        django_kameleoon.track_conversion("not a visitor code", 1)
    assert get_backend().stats()["queued"] == 0
    django_kameleoon.track_conversion("visitor", 1)
    assert django_kameleoon.flush(5)
    assert [e["goalId"] for e in data_api.events] == [1]


def test_5000_conversions_arrive_once_in_few_requests(
    kameleoon: Configure, data_api: DataApiServer
) -> None:
    kameleoon(FLUSH_INTERVAL=1.0)
    for i in range(5000):
        django_kameleoon.track_conversion(f"v{i}", 7, revenue=i / 100)
    assert django_kameleoon.flush(30)
    events = data_api.events
    assert len(events) == 5000 and data_api.duplicates == []
    assert sorted(e["visitorCode"] for e in events) == sorted(f"v{i}" for i in range(5000))
    assert len(data_api.requests) <= 50


def test_big_events_are_split_into_bodies_under_3mb(
    kameleoon: Configure, data_api: DataApiServer
) -> None:
    metadata = {i: ["x" * 2000] for i in range(10)}  # about 20 kB per event
    for i in range(300):
        django_kameleoon.track_conversion(f"v{i}", 1, metadata=metadata)
    assert django_kameleoon.flush(30)
    assert len(data_api.events) == 300
    sizes = [r.body_size for r in data_api.requests]
    assert len(sizes) >= 3
    assert max(sizes) <= 2_500_000  # MAX_BATCH_BYTES, by default


@pytest.mark.parametrize("fault", ["503", "500", "drop"])
def test_failures_are_retried_until_delivered(
    kameleoon: Configure, data_api: DataApiServer, fault: str
) -> None:
    if fault == "drop":
        data_api.drop(times=2)
    else:
        data_api.fail(int(fault), times=2)
    django_kameleoon.track_conversion("visitor", 5)
    assert django_kameleoon.flush(10)
    assert [e["goalId"] for e in data_api.events] == [5]
    assert len(data_api.requests) == 3
    assert get_backend().stats()["retried"] == 2


def test_429_retry_after_is_honoured(kameleoon: Configure, data_api: DataApiServer) -> None:
    data_api.fail(429, headers={"Retry-After": "2"})
    django_kameleoon.track_conversion("visitor", 5)
    assert django_kameleoon.flush(10)
    first, second = data_api.requests
    assert 1.8 <= second.at - first.at <= 3.0
    assert len(data_api.events) == 1


def test_a_late_answer_is_retried_with_the_same_nonces(
    kameleoon: Configure, data_api: DataApiServer
) -> None:
    kameleoon(TIMEOUT=0.5)
    data_api.delay(1.5)
    for i in range(3):
        django_kameleoon.track_conversion(f"v{i}", 5)
    assert django_kameleoon.flush(10)
    # The slow first request is recorded when it is answered, after the retry: its events
    # come back as duplicates of the retry's, which shows the retry carried the same nonces.
    data_api.wait_for_requests(2)
    nonces = sorted(e["nonce"] for e in data_api.events)
    assert len(nonces) == 3
    assert sorted(e["nonce"] for e in data_api.duplicates) == nonces


@pytest.mark.parametrize("status", [400, 401, 403])
def test_refusals_are_not_retried_and_are_reported(
    kameleoon: Configure, data_api: DataApiServer, dropped: list[dict[str, Any]], status: int
) -> None:
    data_api.fail(status)
    django_kameleoon.track_conversion("visitor", 5)
    assert django_kameleoon.flush(10)
    assert len(data_api.requests) == 1 and data_api.events == []
    assert dropped == [{"count": 1, "reason": "rejected"}]
    assert get_backend().stats()["dropped"] == 1


def test_413_splits_the_batch(kameleoon: Configure, data_api: DataApiServer) -> None:
    data_api.fail(413)
    for i in range(10):
        django_kameleoon.track_conversion(f"v{i}", 5)
    assert django_kameleoon.flush(10)
    assert [r.event_count for r in data_api.requests] == [10, 5, 5]
    assert len(data_api.events) == 10


def test_delivered_events_are_signalled(kameleoon: Configure, data_api: DataApiServer) -> None:
    seen: list[int] = []

    def receiver(sender: Any, events: list[Any], **kwargs: Any) -> None:
        seen.append(len(events))

    events_delivered.connect(receiver)
    try:
        django_kameleoon.track_conversion("visitor", 5)
        assert django_kameleoon.flush(5)
    finally:
        events_delivered.disconnect(receiver)
    assert seen == [1]


def test_retries_give_up_after_max_retries(
    kameleoon: Configure, data_api: DataApiServer, dropped: list[dict[str, Any]]
) -> None:
    kameleoon(MAX_RETRIES=2)
    data_api.fail(500, times=3)
    django_kameleoon.track_conversion("visitor", 5)
    assert django_kameleoon.flush(10)
    assert len(data_api.requests) == 3 and data_api.events == []
    assert dropped == [{"count": 1, "reason": "server_error"}]


@pytest.mark.parametrize("backend", ["sync", "locmem", "console"])
def test_the_other_backends(
    kameleoon: Configure, data_api: DataApiServer, backend: str, capsys: Any
) -> None:
    """These deliver at the call: no flush() is needed for the event to be there."""
    kameleoon(BACKEND=backend)
    django_kameleoon.track_conversion("visitor", 9, revenue=2.5)
    if backend == "sync":
        assert [e["goalId"] for e in data_api.events] == [9]
    elif backend == "locmem":
        assert [e.fields["goalId"] for e in django_kameleoon.outbox] == [9]
    else:
        line = capsys.readouterr().out.strip()
        assert line.startswith("kameleoon: ") and json.loads(line[11:])["goalId"] == 9
    if backend != "sync":
        assert data_api.requests == []


@pytest.mark.parametrize("target", [None, "", 42, b"visitor"])
def test_a_target_that_is_no_request_nor_code_raises(kameleoon: Configure, target: Any) -> None:
    with pytest.raises((TypeError, ValueError)):
        django_kameleoon.track_conversion(target, 1)
    with pytest.raises((TypeError, ValueError)):
        django_kameleoon.track(target, "PRODUCT", ean="1")


def test_an_outage_is_waited_out_however_many_retries_it_takes(
    kameleoon: Configure, data_api: DataApiServer, dropped: list[dict[str, Any]]
) -> None:
    """MAX_RETRIES bounds failures of a batch, not the length of an outage."""
    kameleoon(MAX_RETRIES=1, RETRY_BACKOFF_MAX=0.1)
    data_api.fail(503, times=3)
    data_api.drop(times=2)
    data_api.fail(429, times=2)
    data_api.fail(502)
    data_api.fail(504)
    django_kameleoon.track_conversion("visitor", 5)
    assert django_kameleoon.flush(10)
    assert [e["goalId"] for e in data_api.events] == [5]
    assert len(data_api.requests) == 10
    assert dropped == []
