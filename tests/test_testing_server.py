"""``DataApiServer`` (``testing/server.py``, ``handler.py``, ``recording.py``) over HTTP.

What it records of each request, how it treats nonces, its scripted faults, its life cycle and
its waits. These tests need no Django: the server is a plain HTTP server, posted to with
``requests``. Every wait is on the server's condition or on the HTTP answer itself; nothing
sleeps.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
import requests

from django_kameleoon.testing import DataApiServer
from tests.support import (
    SITE,
    UA,
    VALID,
    VISITOR,
    all_valid,
    as_json,
    event,
    post,
    serve_stand_in,
)

api = pytest.fixture(serve_stand_in, name="api")


# --------------------------------------------------------------------------------------------
# The HTTP side: what is read and recorded
# --------------------------------------------------------------------------------------------


def test_chunked_body_is_read(api: DataApiServer) -> None:
    body = as_json(all_valid())
    response = post(api, iter([body[:100], body[100:]]))  # a generator: chunked encoding

    assert response.status_code == 202
    assert api.violations == []
    assert len(api.events) == 10
    assert api.requests[0].headers["transfer-encoding"] == "chunked"


def test_request_record(api: DataApiServer) -> None:
    body = as_json([event("PRODUCT")])
    before = time.monotonic()
    post(api, body, params={"visitorCode": VISITOR})
    (request,) = api.requests

    assert request.method == "POST"
    assert request.path == "/visit/events"
    assert request.query == {"siteCode": SITE, "json": "true", "visitorCode": VISITOR}
    assert request.headers["USER-AGENT"] == UA  # case-insensitive
    assert "User-Agent" in request.headers
    assert (request.body, request.body_size) == (body, len(body))
    assert request.at >= before
    assert request.fault is None


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [("POST", "/visit/event", 404), ("GET", "/", 404), ("GET", "/visit/events", 405)],
)
def test_only_post_visit_events_exists(
    api: DataApiServer, method: str, path: str, status: int
) -> None:
    response = post(api, as_json([event("PRODUCT")]), method=method, path=path)

    assert response.status_code == status
    assert api.events == []
    assert api.requests[0].status == status
    (violation,) = api.violations
    assert f"{method} {path}: only POST" in violation
    if status == 405:
        assert response.headers["Allow"] == "POST"


# --------------------------------------------------------------------------------------------
# Nonces: retries and reuse
# --------------------------------------------------------------------------------------------


def test_resent_event_lands_in_duplicates_without_repeating_violations(api: DataApiServer) -> None:
    body = as_json([event("PRODUCT", 1, ean="1" * 101)])
    post(api, body)
    post(api, body)

    assert len(api.events) == 1
    assert api.duplicates == api.events
    assert len(api.violations) == 1


def test_nonce_reused_for_another_event_is_flagged(api: DataApiServer) -> None:
    post(api, as_json([event("PRODUCT", 1), event("PRODUCT", 1, ean="2")]))

    assert len(api.events) == 1
    assert len(api.duplicates) == 1
    (violation,) = api.violations
    assert f"nonce {1:016x} was reused for a different event" in violation


# --------------------------------------------------------------------------------------------
# Scripted faults
# --------------------------------------------------------------------------------------------


def test_fail_answers_the_status_and_accepts_nothing(api: DataApiServer) -> None:
    api.fail(503, times=2, headers={"Retry-After": "1"})
    body = as_json([event("PRODUCT")])

    first, second, third = (post(api, body) for _ in range(3))

    assert (first.status_code, second.status_code, third.status_code) == (503, 503, 202)
    assert first.headers["Retry-After"] == "1"
    assert [(r.status, r.fault, r.event_count) for r in api.requests] == [
        (503, "fail", 1),
        (503, "fail", 1),
        (202, None, 1),
    ]
    assert len(api.events) == 1
    assert api.duplicates == []
    assert api.violations == []


def test_fail_does_not_examine_the_body(api: DataApiServer) -> None:
    api.fail(500)
    assert post(api, b"not json").status_code == 500
    assert api.violations == []


def test_delay_answers_late_but_accepts(api: DataApiServer) -> None:
    api.delay(0.3)
    started = time.monotonic()
    response = post(api, as_json([event("PRODUCT")]))
    elapsed = time.monotonic() - started

    assert response.status_code == 202
    assert 0.3 <= elapsed < 3
    assert len(api.events) == 1
    assert api.requests[0].fault == "delay"


def test_drop_closes_the_connection_unanswered(api: DataApiServer) -> None:
    api.drop()
    body = as_json([event("PRODUCT")])

    with pytest.raises(requests.ConnectionError):
        post(api, body)
    assert api.events == []
    assert (api.requests[0].status, api.requests[0].fault) == (None, "drop")

    assert post(api, body).status_code == 202  # the fault was used up
    assert len(api.events) == 1
    assert api.duplicates == []


def test_drop_with_accept_loses_only_the_answer(api: DataApiServer) -> None:
    api.drop(accept=True)
    body = as_json([event("PRODUCT")])

    with pytest.raises(requests.ConnectionError):
        post(api, body)
    post(api, body)  # the sender's retry, same nonce

    assert len(api.events) == 1
    assert len(api.duplicates) == 1
    assert api.violations == []


def test_faults_apply_in_order(api: DataApiServer) -> None:
    api.fail(429)
    api.drop()
    api.fail(500)
    body = as_json([event("PRODUCT")])

    assert post(api, body).status_code == 429
    with pytest.raises(requests.ConnectionError):
        post(api, body)
    assert post(api, body).status_code == 500
    assert post(api, body).status_code == 202


def test_faults_only_apply_to_visit_events(api: DataApiServer) -> None:
    api.fail(503)
    assert post(api, b"", method="GET", path="/health").status_code == 404
    assert post(api, as_json([event("PRODUCT")])).status_code == 503


@pytest.mark.parametrize(
    "call",
    [
        lambda s: s.fail(99),
        lambda s: s.fail(500, times=0),
        lambda s: s.delay(-1),
        lambda s: s.drop(times=0),
    ],
)
def test_fault_arguments_are_checked(call: Any) -> None:
    with pytest.raises(ValueError, match="must be"):
        call(DataApiServer())


# --------------------------------------------------------------------------------------------
# Lifecycle and waiting
# --------------------------------------------------------------------------------------------


def test_stop_then_start_keeps_the_port_and_cuts_keep_alive_connections() -> None:
    server = DataApiServer(site_code=SITE).start()
    url = server.url
    body = as_json([event("PRODUCT")])
    try:
        with requests.Session() as session:
            assert post(server, body, session=session).status_code == 202
            server.stop()
            with pytest.raises(requests.ConnectionError):
                post(server, body, session=session)
            server.start()
            assert server.url == url
            assert post(server, body, session=session).status_code == 202
    finally:
        server.stop()
    assert len(server.events) == 1
    assert len(server.duplicates) == 1


def test_url_needs_a_port_and_start_twice_is_an_error() -> None:
    server = DataApiServer()
    with pytest.raises(RuntimeError):
        _ = server.url
    with server, pytest.raises(RuntimeError):
        server.start()
    server.stop()  # a second stop is harmless


def test_wait_for_events_wakes_when_events_arrive(api: DataApiServer) -> None:
    sender = threading.Thread(target=post, args=(api, as_json(all_valid())))
    sender.start()
    events = api.wait_for_events(10, timeout=5)
    sender.join()
    assert len(events) == 10
    assert len(api.wait_for_requests(1, timeout=5)) == 1


def test_wait_for_events_raises_at_the_deadline(api: DataApiServer) -> None:
    post(api, as_json([event("PRODUCT", ean="1" * 101)]))
    started = time.monotonic()

    with pytest.raises(AssertionError, match=r"for 2 events .* got 1 events .*ean has 101"):
        api.wait_for_events(2, timeout=0.1)
    assert time.monotonic() - started < 3
    with pytest.raises(AssertionError, match="for 5 requests"):
        api.wait_for_requests(5, timeout=0.05)


def test_reset_forgets_everything(api: DataApiServer) -> None:
    body = as_json([event("PRODUCT", ean="1" * 101)])
    post(api, body)
    post(api, body)
    api.fail(500)
    api.reset()

    assert (api.events, api.duplicates, api.requests, api.violations) == ([], [], [], [])
    assert post(api, body).status_code == 202  # the pending fault is gone too
    assert len(api.events) == 1  # and the nonce is new again


def test_callbacks_see_accepted_events_and_violations() -> None:
    seen: list[dict[str, Any]] = []
    broken: list[str] = []
    with DataApiServer(on_event=seen.append, on_violation=broken.append) as server:
        post(server, as_json([event("PRODUCT", 1), event("PRODUCT", 1), event("PAGE", 2, x=1)]))
        assert [e["nonce"] for e in seen] == [f"{1:016x}", f"{2:016x}"]
        assert broken == server.violations
        assert len(broken) == 1


def test_reads_are_copies(api: DataApiServer) -> None:
    post(api, as_json([event("CONVERSION")]))
    api.events[0]["metadata"]["1"].append("changed")
    api.requests.clear()
    assert api.events[0]["metadata"]["1"] == VALID["CONVERSION"]["metadata"]["1"]
    assert len(api.requests) == 1
