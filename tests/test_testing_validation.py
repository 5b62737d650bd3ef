"""The stand-in's validation of values and events (``testing/validation.py``), over HTTP.

Each of the ten event types, each field's type and limit, in both body formats, as Kameleoon's
page for the endpoint gives them (``docs/data-api-visit-events.md``). No Django needed.
"""

from __future__ import annotations

from typing import Any

import pytest

from django_kameleoon.testing import DataApiServer, examine_event
from tests.support import VISITOR, all_valid, as_json, as_query, event, post, serve_stand_in, typed

api = pytest.fixture(serve_stand_in, name="api")


# --------------------------------------------------------------------------------------------
# Valid events, typed the same in both formats
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


def test_mapping_identifier_false_allows_long_keys(api: DataApiServer) -> None:
    post(api, as_json([event("CUSTOMDATA", valuesCountMap={"k" * 2048: 1})]))
    assert api.violations == []


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


def test_examine_event_is_usable_alone() -> None:
    typed_event, problems = examine_event(
        {"nonce": "0" * 16, "eventType": "PAGE", "href": "x", "keyPageIndices": "[1]"},
        from_query=True,
        visitor_code="v",
    )
    assert problems == []
    assert typed_event["keyPageIndices"] == [1]
