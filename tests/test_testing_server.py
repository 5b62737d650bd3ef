"""The Data API stand-in (``django_kameleoon.testing``) against its rules.

These tests need no Django: the server is a plain HTTP server, posted to with ``requests``.
Every wait is on the server's condition or on the HTTP answer itself; nothing sleeps.
"""

from __future__ import annotations

import http.client
import json
import threading
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest
import requests

from django_kameleoon.testing import MAX_BODY_BYTES, DataApiServer, examine_event

SITE = "site-under-test"
UA = "django-kameleoon-tests/1.0"
VISITOR = "visitor-0001"


@pytest.fixture
def api() -> Iterator[DataApiServer]:
    with DataApiServer(site_code=SITE) as server:
        yield server


def post(
    api: DataApiServer,
    body: bytes | str | Any,
    *,
    fmt: str = "json",
    params: dict[str, str] | None = None,
    headers: dict[str, Any] | None = None,
    path: str = "/visit/events",
    method: str = "POST",
    session: requests.Session | None = None,
) -> requests.Response:
    query = {"siteCode": SITE, **({"json": "true"} if fmt == "json" else {}), **(params or {})}
    send = session.request if session else requests.request
    return send(
        method,
        api.url + path,
        params=query,
        data=body,
        headers={"User-Agent": UA, **(headers or {})},
        timeout=5,
    )


def query_value(value: Any) -> str:
    """A value as our sender must write it in query format: JSON types as JSON text."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    return str(value)


def as_query(events: list[dict[str, Any]]) -> bytes:
    lines = (
        "&".join(f"{quote(k, safe='')}={quote(query_value(v), safe='')}" for k, v in e.items())
        for e in events
    )
    return "\n".join(lines).encode()


def as_json(events: list[dict[str, Any]]) -> bytes:
    return json.dumps(events).encode()


# One valid event of each of the ten types, every field of the page's tables used.
VALID: dict[str, dict[str, Any]] = {
    "STATICDATA": {
        "visitNumber": 3,
        "timeSincePreviousVisit": 2**40,
        "browser": "Safari",
        "browserIndex": 2,
        "browserVersion": 16.3,
        "os": "Windows",
        "osIndex": 1,
        "screenWidth": 1920,
        "screenHeight": 1080,
        "localeLanguageTag": "fr-FR",
        "deviceType": "DESKTOP",
    },
    "PAGE": {
        "href": "https://www.supersite.com/superpage?superparam=true&x=1%2B2",
        "canonicalHref": "https://www.supersite.com/superpage",
        "title": "Prix: 10 € + TVA & frais = total\nligne 2",
        "keyPageIndices": [1, 2],
        "referrerHref": "https://search.example/?q=a+b",
        "referrerIndices": [],
    },
    "CONVERSION": {
        "goalId": 2**40,
        "revenue": 24.99,
        "negative": True,
        "metadata": {"1": ["gold", "a&b=c"], "-7": []},
    },
    "TARGETINGSEGMENT": {"id": 12},
    "EXPERIMENT": {"id": 5, "variationId": 0},
    "PERSONALIZATION": {"id": 6, "variationId": 0, "unexpositionCause": "SCHEDULE"},
    "WEATHER": {
        "temperature": 293.15,
        "humidity": 40.0,
        "pressure": 1013.25,
        "windSpeed": 3.5,
        "cloudiness": 20.0,
        "sunriseTime": 1_700_000_000_000,
        "sunsetTime": 1_700_040_000_000,
        "weatherCode": "Sky is Clear",
    },
    "CUSTOMDATA": {
        "index": 3,
        "mappingIdentifier": False,
        "valuesCountMap": {"gold": 1, "x" * 2048: 2},
        "overwrite": False,
    },
    "PRODUCT": {"ean": "4006381333931"},
    "GEOLOCATION": {
        "country": "France",
        "region": "Île-de-France",
        "city": "Paris",
        "postalCode": "75001",
        "latitude": 48.86,
        "longitude": -2,
    },
}


def event(event_type: str, n: int = 1, **changes: Any) -> dict[str, Any]:
    """A valid event of ``event_type``, with ``changes`` (a value of ``...`` removes a field)."""
    base = {"visitorCode": VISITOR, "nonce": f"{n:016x}", "eventType": event_type}
    merged = {**base, **VALID[event_type], **changes}
    return {k: v for k, v in merged.items() if v is not ...}


def all_valid() -> list[dict[str, Any]]:
    return [event(t, n) for n, t in enumerate(VALID, 1)]


def typed(e: dict[str, Any]) -> dict[str, Any]:
    """What the server should store: float64 fields as floats."""
    floats = {"browserVersion", "revenue", "temperature", "humidity", "pressure"}
    floats |= {"windSpeed", "cloudiness", "latitude", "longitude"}
    return {k: float(v) if k in floats else v for k, v in e.items()}


# --------------------------------------------------------------------------------------------
# Valid traffic
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["json", "query"])
def test_all_ten_types_accepted_and_typed_in_both_formats(api: DataApiServer, fmt: str) -> None:
    events = all_valid()
    response = post(api, as_json(events) if fmt == "json" else as_query(events), fmt=fmt)

    assert response.status_code == 202
    assert response.content == b""
    assert api.violations == []
    assert api.events == [typed(e) for e in events]
    got = api.events[0]
    assert type(got["visitNumber"]) is int
    assert type(got["browserVersion"]) is float
    assert type(api.events[2]["negative"]) is bool
    assert type(api.events[9]["longitude"]) is float
    (request,) = api.requests
    assert (request.body_format, request.event_count, request.status) == (fmt, 10, 202)


def test_the_pages_examples_type_identically_in_both_formats(api: DataApiServer) -> None:
    query_body = (
        "nonce=d2ce4d22083348fb&eventType=STATICDATA&browser=Safari&browserVersion=16.3"
        "&deviceType=DESKTOP&os=Windows\n"
        "nonce=b0a4253d8acd01c7&eventType=PAGE"
        "&href=https%3A%2F%2Fwww.supersite.com%2Fsuperpage%3Fsuperparam%3Dtrue\n"
        "nonce=4ca34741a6cc8a48&eventType=CONVERSION&goalId=2&revenue=24.99\n"
    )
    json_body = [
        {
            "nonce": "d2ce4d22083348fb",
            "eventType": "STATICDATA",
            "browser": "Safari",
            "browserVersion": 16.3,
            "deviceType": "DESKTOP",
            "os": "Windows",
        },
        {
            "nonce": "b0a4253d8acd01c7",
            "eventType": "PAGE",
            "href": "https://www.supersite.com/superpage?superparam=true",
        },
        {"nonce": "4ca34741a6cc8a48", "eventType": "CONVERSION", "goalId": 2, "revenue": 24.99},
    ]
    post(api, query_body, fmt="query", params={"visitorCode": VISITOR})
    from_query = api.events
    api.reset()
    post(api, as_json(json_body), params={"visitorCode": VISITOR})

    assert api.violations == []
    assert api.events == from_query
    assert from_query[2] == {
        "visitorCode": VISITOR,
        "nonce": "4ca34741a6cc8a48",
        "eventType": "CONVERSION",
        "goalId": 2,
        "revenue": 24.99,
    }


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


def test_mapping_identifier_false_allows_long_keys(api: DataApiServer) -> None:
    post(api, as_json([event("CUSTOMDATA", valuesCountMap={"k" * 2048: 1})]))
    assert api.violations == []


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


# --------------------------------------------------------------------------------------------
# Event rules: one bad event each
# --------------------------------------------------------------------------------------------

BAD_JSON_EVENTS: list[tuple[str, dict[str, Any], str]] = [
    ("nonce missing", event("PAGE", nonce=...), "missing required field PAGE.nonce"),
    ("nonce short", event("PAGE", nonce="abc123"), "PAGE.nonce must match"),
    ("nonce not hex", event("PAGE", nonce="z" * 16), "PAGE.nonce must match"),
    ("type missing", event("PRODUCT", eventType=...), "missing required field event.eventType"),
    ("type unknown", event("PRODUCT", eventType="CLICK"), "event.eventType must be one of"),
    ("unknown field", event("PAGE", color="red"), "unknown field PAGE.color"),
    ("other type's field", event("STATICDATA", href="x"), "unknown field STATICDATA.href"),
    ("visitor missing", event("PRODUCT", visitorCode=...), "missing PRODUCT.visitorCode"),
    ("visitor long", event("PRODUCT", visitorCode="v" * 101), "over the limit of 100"),
    ("visitor empty", event("PRODUCT", visitorCode=""), "visitorCode must not be empty"),
    ("visitor int", event("PRODUCT", visitorCode=7), "visitorCode must be a string"),
    ("href missing", event("PAGE", href=...), "missing required field PAGE.href"),
    ("goal missing", event("CONVERSION", goalId=...), "missing required field CONVERSION.goalId"),
    ("segment id", event("TARGETINGSEGMENT", id=...), "missing required field TARGETINGSEGMENT.id"),
    ("variation", event("EXPERIMENT", variationId=...), "field EXPERIMENT.variationId"),
    ("perso id", event("PERSONALIZATION", id=...), "missing required field PERSONALIZATION.id"),
    ("sunset", event("WEATHER", sunsetTime=...), "missing required field WEATHER.sunsetTime"),
    ("wind", event("WEATHER", windSpeed=...), "missing required field WEATHER.windSpeed"),
    ("index", event("CUSTOMDATA", index=...), "missing required field CUSTOMDATA.index"),
    ("map missing", event("CUSTOMDATA", valuesCountMap=...), "field CUSTOMDATA.valuesCountMap"),
    ("ean missing", event("PRODUCT", ean=...), "missing required field PRODUCT.ean"),
    ("int32 over", event("STATICDATA", visitNumber=2**31), "visitNumber = 2147483648 is out of"),
    ("int32 under", event("STATICDATA", screenWidth=-(2**31) - 1), "out of the int32 range"),
    ("int64 over", event("CONVERSION", goalId=2**63), "goalId = 9223372036854775808 is out"),
    ("int64 under", event("STATICDATA", timeSincePreviousVisit=-(2**63) - 1), "int64 range"),
    ("int is bool", event("CONVERSION", goalId=True), "goalId must be an int64 integer, got True"),
    ("int is float", event("CUSTOMDATA", index=2.0), "index must be an int32 integer"),
    ("int is text", event("EXPERIMENT", id="5"), "EXPERIMENT.id must be an int64 integer"),
    ("float is bool", event("CONVERSION", revenue=True), "revenue must be a number, got True"),
    ("float is text", event("STATICDATA", browserVersion="16.3"), "browserVersion must be a"),
    ("float null", event("WEATHER", temperature=None), "temperature must be a number"),
    ("bool is text", event("CONVERSION", negative="true"), "negative must be true or false"),
    ("bool is int", event("CUSTOMDATA", overwrite=0), "overwrite must be true or false"),
    ("bool mapping", event("CUSTOMDATA", mappingIdentifier="yes"), "mappingIdentifier must be"),
    ("array is text", event("PAGE", keyPageIndices="[1]"), "keyPageIndices must be a JSON array"),
    ("array of text", event("PAGE", referrerIndices=["1"]), "must hold only integers"),
    ("array of bool", event("PAGE", keyPageIndices=[True]), "must hold only integers"),
    ("metadata list", event("CONVERSION", metadata=[]), "metadata must be a JSON object"),
    ("metadata key", event("CONVERSION", metadata={"x": []}), "key 'x' is not an int32"),
    ("metadata key range", event("CONVERSION", metadata={str(2**31): []}), "not an int32"),
    ("metadata values", event("CONVERSION", metadata={"1": "a"}), "values of id 1 must be"),
    ("metadata value int", event("CONVERSION", metadata={"1": [1]}), "JSON array of strings"),
    (
        "metadata ids",
        event("CONVERSION", metadata={str(i): [] for i in range(257)}),
        "has 257 ids, over the limit of 256",
    ),
    (
        "metadata values count",
        event("CONVERSION", metadata={"1": ["v"] * 257}),
        "id 1 has 257 values, over the limit of 256",
    ),
    (
        "metadata value long",
        event("CONVERSION", metadata={"1": ["v" * 2049]}),
        "a value of id 1 has 2049 characters, over the limit of 2048",
    ),
    ("map is list", event("CUSTOMDATA", valuesCountMap=[]), "valuesCountMap must be a JSON obj"),
    ("map count text", event("CUSTOMDATA", valuesCountMap={"a": "1"}), "count of 'a' must be"),
    ("map count bool", event("CUSTOMDATA", valuesCountMap={"a": True}), "int32 integer"),
    ("map count range", event("CUSTOMDATA", valuesCountMap={"a": 2**31}), "int32 range"),
    (
        "map entries",
        event("CUSTOMDATA", valuesCountMap={str(i): 1 for i in range(257)}),
        "has 257 values, over the limit of 256",
    ),
    (
        "map key long",
        event("CUSTOMDATA", valuesCountMap={"k" * 2049: 1}),
        "a value has 2049 characters, over the limit of 2048",
    ),
    (
        "map key mapping id",
        event("CUSTOMDATA", mappingIdentifier=True, valuesCountMap={"k" * 101: 1}),
        "mappingIdentifier being true: a value has 101 characters, over the limit of 100",
    ),
    ("device", event("STATICDATA", deviceType="TV"), "deviceType must be one of DESKTOP, TAB"),
    ("device case", event("STATICDATA", deviceType="desktop"), "deviceType must be one of"),
    (
        "cause value",
        event("PERSONALIZATION", unexpositionCause="BORED"),
        "unexpositionCause must be one of GLOBAL_EXCLUSION",
    ),
    (
        "cause variation",
        event("PERSONALIZATION", variationId=4),
        "unexpositionCause is only valid when variationId is 0, got variationId 4",
    ),
    ("browser", event("STATICDATA", browser="b" * 101), "STATICDATA.browser has 101 characters"),
    ("os", event("STATICDATA", os="o" * 101), "STATICDATA.os has 101 characters, over the limit"),
    ("href", event("PAGE", href="h" * 2049), "PAGE.href has 2049 characters, over the limit of"),
    ("canonical", event("PAGE", canonicalHref="h" * 2049), "canonicalHref has 2049 characters"),
    ("title", event("PAGE", title="t" * 257), "PAGE.title has 257 characters, over the limit of"),
    ("title type", event("PAGE", title=12), "PAGE.title must be a string, got 12"),
    ("surrogate", event("PAGE", title="a\ud800b"), "PAGE.title contains a lone surrogate"),
    ("weather", event("WEATHER", weatherCode="w" * 101), "weatherCode has 101 characters"),
    ("ean", event("PRODUCT", ean="1" * 101), "PRODUCT.ean has 101 characters"),
    ("country", event("GEOLOCATION", country="c" * 101), "country has 101 characters"),
    ("region", event("GEOLOCATION", region="r" * 101), "region has 101 characters"),
    ("city", event("GEOLOCATION", city="c" * 101), "GEOLOCATION.city has 101 characters"),
    ("postal", event("GEOLOCATION", postalCode="7" * 101), "postalCode has 101 characters"),
    ("latitude", event("GEOLOCATION", latitude="48.8"), "latitude must be a number"),
]


@pytest.mark.parametrize(
    ("bad", "expected"),
    [(b, e) for _, b, e in BAD_JSON_EVENTS],
    ids=[i for i, _, _ in BAD_JSON_EVENTS],
)
def test_bad_json_event_is_flagged_but_accepted(
    api: DataApiServer, bad: dict[str, Any], expected: str
) -> None:
    response = post(api, as_json([event("PRODUCT", 99), bad]))

    assert response.status_code == 202  # the API accepts before it validates
    (violation,) = api.violations
    assert expected in violation
    assert violation.startswith("event 2")
    assert len(api.events) == 2


BAD_QUERY_LINES: list[tuple[str, str, str]] = [
    ("int decimal", "goalId=1.0", "CONVERSION.goalId must be an int64 integer, got '1.0'"),
    ("int plus", "goalId=%2B1", "goalId must be an int64 integer, got '+1'"),
    ("int empty", "goalId=", "goalId must be an int64 integer, got ''"),
    ("int range", "goalId=9223372036854775808", "out of the int64 range"),
    ("nan", "goalId=1&revenue=nan", "revenue must be a decimal number, got 'nan'"),
    ("inf", "goalId=1&revenue=inf", "revenue must be a decimal number"),
    ("huge", "goalId=1&revenue=1e999", "revenue must be a finite number"),
    ("bool case", "goalId=1&negative=True", "negative must be true or false, got 'True'"),
    ("bool digit", "goalId=1&negative=1", "negative must be true or false"),
    ("json broken", "goalId=1&metadata=%7B%221%22", "CONVERSION.metadata is not valid JSON"),
    ("json nan", "goalId=1&metadata=NaN", "metadata is not valid JSON (NaN is not JSON)"),
    ("json twice", "goalId=1&metadata=%7B%221%22%3A[]%2C%221%22%3A[]%7D", "key '1' twice"),
    ("field twice", "goalId=1&goalId=2", "has the field 'goalId' twice"),
    ("no equals", "goalId", "is not URL-encoded name=value pairs"),
    ("empty pair", "goalId=1&&revenue=2", "is not URL-encoded name=value pairs"),
    ("bad escape", "goalId=1&revenue=%zz", "malformed percent escape '%zz'"),
    ("not utf-8", "goalId=1&metadata=%FF", "is not URL-encoded name=value pairs"),
    ("surrogate", "goalId=1&metadata=%ED%A0%80", "is not URL-encoded name=value pairs"),
]


@pytest.mark.parametrize(
    ("fields", "expected"),
    [(f, e) for _, f, e in BAD_QUERY_LINES],
    ids=[i for i, _, _ in BAD_QUERY_LINES],
)
def test_bad_query_line_is_flagged(api: DataApiServer, fields: str, expected: str) -> None:
    line = f"visitorCode={VISITOR}&nonce={'a' * 16}&eventType=CONVERSION&{fields}"
    response = post(api, line, fmt="query")

    assert response.status_code == 202
    (violation,) = api.violations
    assert expected in violation
    assert violation.startswith("event 1")


def test_empty_line_between_events_is_flagged(api: DataApiServer) -> None:
    post(
        api,
        as_query([event("PRODUCT", 1)]) + b"\n\n" + as_query([event("PRODUCT", 2)]),
        fmt="query",
    )
    assert api.violations == ["event 2 is an empty line"]
    assert len(api.events) == 2


def test_examine_event_is_usable_alone() -> None:
    typed_event, problems = examine_event(
        {"nonce": "0" * 16, "eventType": "PAGE", "href": "x", "keyPageIndices": "[1]"},
        from_query=True,
        visitor_code="v",
    )
    assert problems == []
    assert typed_event["keyPageIndices"] == [1]


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
    assert api.violations == ["User-Agent header is missing; the seed says to set our own"]


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
    assert api.events[0]["metadata"]["1"] == ["gold", "a&b=c"]
    assert len(api.requests) == 1
