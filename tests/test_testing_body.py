"""The stand-in's reading of a whole request (``testing/body.py``), over HTTP.

How both body formats are split, and the rules of the URL query, the headers and the size, as
Kameleoon's page for the endpoint gives them (``docs/data-api-visit-events.md``). No Django.
"""

from __future__ import annotations

import http.client
import json
from typing import Any

import pytest
import requests

from django_kameleoon.testing import MAX_BODY_BYTES, DataApiServer
from tests.support import SITE, UA, as_json, as_query, event, post, serve_stand_in

api = pytest.fixture(serve_stand_in, name="api")


# --------------------------------------------------------------------------------------------
# Splitting a body into events
# --------------------------------------------------------------------------------------------


def test_query_format_tolerates_crlf_and_one_trailing_new_line(api: DataApiServer) -> None:
    lines = as_query([event("PRODUCT", 1), event("PRODUCT", 2)]).split(b"\n")
    post(api, b"\r\n".join(lines) + b"\r\n", fmt="query")

    assert api.violations == []
    assert [e["nonce"] for e in api.events] == [f"{1:016x}", f"{2:016x}"]


def test_query_visitor_code_applies_to_every_event(api: DataApiServer) -> None:
    events = [event("PRODUCT", 1, visitorCode=...), event("PRODUCT", 2, visitorCode="other")]
    post(api, as_json(events), params={"visitorCode": "from-query"})

    assert api.violations == []
    assert {e["visitorCode"] for e in api.events} == {"from-query"}


def test_empty_line_between_events_is_flagged(api: DataApiServer) -> None:
    post(
        api,
        as_query([event("PRODUCT", 1)]) + b"\n\n" + as_query([event("PRODUCT", 2)]),
        fmt="query",
    )
    assert api.violations == ["event 2 is an empty line"]
    assert len(api.events) == 2


# --------------------------------------------------------------------------------------------
# Request rules
# --------------------------------------------------------------------------------------------


BAD_BODIES: list[tuple[str, bytes, str]] = [
    ("malformed", b'[{"nonce": ', "body is not valid JSON"),
    ("nan", b"[NaN]", "NaN is not JSON"),
    (
        "not array",
        b'{"nonce": "0000000000000001"}',
        "body must be a JSON array of events, got a dict",
    ),
    ("empty array", b"[]", "body holds no events"),
    ("empty body", b"", "body is not valid JSON"),
    ("not utf-8", b'[{"title": "\xff"}]', "body is not valid UTF-8"),
]


@pytest.mark.parametrize(
    ("body", "expected"), [(b, e) for _, b, e in BAD_BODIES], ids=[i for i, _, _ in BAD_BODIES]
)
def test_bad_json_body_is_flagged(api: DataApiServer, body: bytes, expected: str) -> None:
    assert post(api, body).status_code == 202
    (violation,) = api.violations
    assert expected in violation
    assert api.events == []


def test_non_object_item_and_duplicate_key_are_flagged(api: DataApiServer) -> None:
    first, third = json.dumps(event("PRODUCT", 1)), json.dumps(event("PRODUCT", 3))
    post(api, f'[{first}, 3, {third[:-1]}, "ean": "1"}}]')
    assert api.violations == [
        "a JSON object has the key 'ean' twice",
        "event 2 is not a JSON object: 3",
    ]


def test_empty_query_body_is_flagged(api: DataApiServer) -> None:
    post(api, b"", fmt="query")
    assert api.violations == ["body holds no events"]


@pytest.mark.parametrize(
    ("params", "status", "expected"),
    [
        ({"siteCode": None}, 400, "URL query lacks the required siteCode"),
        ({"json": "yes"}, 400, "URL query json='yes' must be true or false"),
        ({"json": "TRUE"}, 400, "must be true or false"),
        ({"siteCode": "someone-else"}, 202, "siteCode 'someone-else' is not this server's"),
        ({"visitorCode": "v" * 101}, 202, "URL query visitorCode has 101 characters"),
        ({"visitorCode": ""}, 202, "URL query visitorCode must not be empty"),
    ],
)
def test_bad_url_query(
    api: DataApiServer, params: dict[str, Any], status: int, expected: str
) -> None:
    response = post(api, as_json([event("PRODUCT")]), params=params)

    assert response.status_code == status
    (violation,) = api.violations
    assert expected in violation
    assert len(api.events) == (1 if status == 202 else 0)
    assert api.requests[0].status == status


def test_json_false_means_query_format(api: DataApiServer) -> None:
    post(api, as_query([event("PRODUCT")]), fmt="query", params={"json": "false"})
    assert api.violations == []
    assert api.requests[0].body_format == "query"


def test_parameter_given_twice_is_flagged(api: DataApiServer) -> None:
    response = requests.post(
        f"{api.url}/visit/events?siteCode={SITE}&json=true&json=true",
        data=as_json([event("PRODUCT")]),
        headers={"User-Agent": UA},
        timeout=5,
    )
    assert response.status_code == 202
    assert api.violations == ["URL query parameter json is given twice"]


def test_missing_user_agent_is_flagged(api: DataApiServer) -> None:
    # http.client adds no User-Agent of its own (requests and urllib3 would).
    connection = http.client.HTTPConnection("127.0.0.1", api.port, timeout=5)
    try:
        connection.request(
            "POST", f"/visit/events?siteCode={SITE}&json=true", as_json([event("PRODUCT")])
        )
        assert connection.getresponse().status == 202
    finally:
        connection.close()
    assert api.violations == ["User-Agent header is missing; a server-side sender must set its own"]


@pytest.mark.parametrize(
    ("user_agent", "expected"),
    [
        ("", "User-Agent header is missing"),
        (None, "'python-urllib3/"),
        ("python-requests/2.32.3", "'python-requests/2.32.3' is the HTTP library's default"),
        ("Python-urllib/3.11", "is the HTTP library's default"),
    ],
)
def test_library_user_agent_is_flagged(
    api: DataApiServer, user_agent: str | None, expected: str
) -> None:
    post(api, as_json([event("PRODUCT")]), headers={"User-Agent": user_agent})
    (violation,) = api.violations
    assert expected in violation


def test_body_of_exactly_3_000_000_bytes_is_accepted(api: DataApiServer) -> None:
    body = as_json([event("PRODUCT")])
    body = body[:-1] + b" " * (MAX_BODY_BYTES - len(body)) + b"]"
    assert len(body) == MAX_BODY_BYTES

    assert post(api, body).status_code == 202
    assert api.violations == []
    assert len(api.events) == 1


def test_body_over_3_000_000_bytes_is_refused_with_413(api: DataApiServer) -> None:
    body = as_json([event("PRODUCT")])
    body = body[:-1] + b" " * (MAX_BODY_BYTES + 1 - len(body)) + b"]"

    assert post(api, body).status_code == 413
    assert api.events == []
    assert api.violations == ["body is 3,000,001 bytes, over the 3,000,000-byte limit"]
    assert api.requests[0].body_size == MAX_BODY_BYTES + 1
    assert api.requests[0].event_count == 1
