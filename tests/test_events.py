"""Events: every field of the ten types, the API's limits, and rejection of malformed input."""

from __future__ import annotations

import json
import math
import random
import re
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qsl

import pytest

from django_kameleoon.events import (
    EVENT_TYPES,
    FIELDS,
    Event,
    SharedFields,
    make_event,
    new_nonce,
)
from django_kameleoon.testing import MAX_BODY_BYTES
from tests.support import FULL_EVENTS


def test_the_sample_covers_every_field_of_every_type() -> None:
    assert set(FULL_EVENTS) == set(EVENT_TYPES)
    for event_type, fields in FULL_EVENTS.items():
        assert set(fields) == set(FIELDS[event_type]), event_type


@pytest.mark.parametrize("event_type", EVENT_TYPES)
def test_both_formats_carry_the_same_values(event_type: str) -> None:
    event = make_event("visitor-1", event_type, FULL_EVENTS[event_type])
    from_json = json.loads(event.to_json())
    from_query = dict(parse_qsl(event.to_query_line(), keep_blank_values=True, strict_parsing=True))
    assert from_json["visitorCode"] == from_query["visitorCode"] == "visitor-1"
    assert from_json["eventType"] == from_query["eventType"] == event_type
    for name, value in from_json.items():
        text = from_query[name]
        expected = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
        if isinstance(value, bool):
            expected = "true" if value else "false"
        elif isinstance(value, (dict, list)):
            assert json.loads(text) == value
            continue
        assert text == expected, name


def test_query_line_escapes_separators_newlines_and_non_ascii() -> None:
    event = make_event("v", "PRODUCT", {"ean": "a&b=c%d\ne é"})
    line = event.to_query_line()
    assert "\n" not in line and " " not in line
    assert line.isascii()
    assert dict(parse_qsl(line))["ean"] == "a&b=c%d\ne é"


@pytest.mark.parametrize("body_format", ["json", "query"])
def test_events_with_equal_values_of_other_types_encode_apart(body_format: str) -> None:
    """Fields are encoded once for every event that carries the same ones (``_encoded_fields``);
    ``1``, ``1.0`` and ``True`` are equal keys to a dict, and must still be sent as written."""
    encode = Event.to_json if body_format == "json" else Event.to_query_line
    values = [1.0, 1, True, 1.0, True, 1]
    bodies = [encode(Event("v", "CUSTOMDATA", {"overwrite": value})) for value in values]
    for value, body in zip(values, bodies, strict=True):
        expected = {"visitorCode": "v", "eventType": "CUSTOMDATA", "overwrite": value}
        if body_format == "json":
            decoded = json.loads(body)
            assert type(decoded["overwrite"]) is type(value)
        else:
            decoded = dict(parse_qsl(body))
            expected["overwrite"] = "true" if value is True else json.dumps(value)
        del decoded["nonce"]
        assert decoded == expected


def test_an_event_encodes_as_its_dict_whatever_the_cache_holds() -> None:
    """Each encoding is the whole of ``as_dict()``, for fields met before or not, in either
    format, with visitor codes and nonces that need escaping."""
    samples = [make_event("visitor-1", t, FULL_EVENTS[t]) for t in EVENT_TYPES]
    samples += [
        Event('odd"code\\', "PAGE", {"href": "https://example.com/é\u2028"}, nonce="n&=1"),
        Event("v", "TARGETINGSEGMENT", {}),
    ]
    for event in samples * 2:
        as_dict = event.as_dict()
        assert json.loads(event.to_json()) == json.loads(json.dumps(as_dict))
        pairs = parse_qsl(event.to_query_line(), keep_blank_values=True, strict_parsing=True)
        assert [name for name, _ in pairs] == list(as_dict)


def test_the_encoding_cache_is_bounded_in_entries_and_length() -> None:
    from django_kameleoon import events

    long_href = "https://example.com/" + "x" * events.ENCODED_CACHE_LENGTH
    Event("v", "PAGE", {"href": long_href}).to_json()
    assert not any(long_href in key for key in events._encoded)
    for i in range(events.ENCODED_CACHE_SIZE * 2 + 10):
        Event("v", "PAGE", {"href": f"https://example.com/{i}"}).to_json()
        assert len(events._encoded) <= events.ENCODED_CACHE_SIZE


@pytest.mark.parametrize("body_format", ["json", "query"])
def test_shared_fields_are_encoded_once_for_every_event_that_carries_them(
    body_format: str,
) -> None:
    """A page's or a browser's fields, shared by many events, keep their encoding with them:
    the cache by content is left alone, and each event still encodes as its own dict."""
    from django_kameleoon import events

    encode = Event.to_json if body_format == "json" else Event.to_query_line
    fields = SharedFields({"href": "https://example.com/shared/é", "title": 'a "quoted" page'})
    before = dict(events._encoded)
    bodies = [encode(Event(code, "PAGE", fields)) for code in ("visitor-1", "visitor-2")]
    assert len(fields.encodings) == 1
    assert events._encoded == before
    for code, body in zip(("visitor-1", "visitor-2"), bodies, strict=True):
        if body_format == "json":
            decoded = json.loads(body)
        else:
            decoded = dict(parse_qsl(body, strict_parsing=True))
        del decoded["nonce"]
        assert decoded == {"visitorCode": code, "eventType": "PAGE", **fields}
    # The other format gets an encoding of its own, beside the first.
    (Event.to_query_line if body_format == "json" else Event.to_json)(Event("v", "PAGE", fields))
    assert len(fields.encodings) == 2


def test_nonce_is_16_hex_and_made_once() -> None:
    event = make_event("v", "TARGETINGSEGMENT", {"id": 1})
    assert re.fullmatch(r"[0-9a-f]{16}", event.nonce)
    # Made with the event, not with each encoding: every body carries the same one.
    bodies = [event.to_json(), event.to_json()]
    assert [json.loads(body)["nonce"] for body in bodies] == [event.nonce, event.nonce]
    assert dict(parse_qsl(event.to_query_line()))["nonce"] == event.nonce
    assert len({new_nonce() for _ in range(1000)}) == 1000


@pytest.mark.parametrize(
    ("event_type", "fields", "error"),
    [
        ("CONVERSION", {"goalId": "42"}, TypeError),
        ("CONVERSION", {"goalId": 4.0}, TypeError),
        ("CONVERSION", {"goalId": True}, TypeError),
        ("CONVERSION", {"goalId": 2**63}, ValueError),
        ("CONVERSION", {"goalId": 1, "revenue": math.nan}, ValueError),
        ("CONVERSION", {"goalId": 1, "revenue": math.inf}, ValueError),
        ("CONVERSION", {"goalId": 1, "revenue": Decimal("NaN")}, ValueError),
        ("CONVERSION", {"goalId": 1, "revenue": Decimal("1e400")}, ValueError),
        ("CONVERSION", {"goalId": 1, "revenue": "9.99"}, TypeError),
        ("CONVERSION", {"goalId": 1, "revenue": False}, TypeError),
        ("CONVERSION", {"goalId": 1, "negative": 1}, TypeError),
        ("CONVERSION", {"goalId": 1, "metadata": [1, 2]}, TypeError),
        ("CONVERSION", {"goalId": 1, "metadata": {"1": ["a"]}}, TypeError),
        ("CONVERSION", {"goalId": 1, "metadata": {1: "a"}}, TypeError),
        ("CONVERSION", {"goalId": 1, "metadata": {1: [2]}}, TypeError),
        ("CONVERSION", {"goalId": 1, "metadata": {2**31: ["a"]}}, ValueError),
        ("CONVERSION", {}, TypeError),
        ("CONVERSION", {"goalId": 1, "colour": "red"}, TypeError),
        ("STATICDATA", {"deviceType": "WATCH"}, ValueError),
        ("STATICDATA", {"visitNumber": 2**31}, ValueError),
        ("STATICDATA", {"browser": 3}, TypeError),
        ("PAGE", {}, TypeError),
        ("PAGE", {"href": "https://x", "keyPageIndices": "1,2"}, TypeError),
        ("PAGE", {"href": "https://x", "keyPageIndices": [1.5]}, TypeError),
        (
            "PERSONALIZATION",
            {"id": 1, "variationId": 3, "unexpositionCause": "SCHEDULE"},
            ValueError,
        ),
        ("PERSONALIZATION", {"id": 1, "variationId": 0, "unexpositionCause": "BORED"}, ValueError),
        ("EXPERIMENT", {"id": 1}, TypeError),
        ("WEATHER", {**FULL_EVENTS["WEATHER"], "humidity": None}, TypeError),
        ("CUSTOMDATA", {"index": 1, "valuesCountMap": {"a": "1"}}, TypeError),
        ("CUSTOMDATA", {"index": 1, "valuesCountMap": {3: 1}}, TypeError),
        ("CUSTOMDATA", {"index": 1, "valuesCountMap": ["a"]}, TypeError),
        ("PRODUCT", {"ean": None}, TypeError),
        ("BANANA", {}, ValueError),
    ],
)
def test_malformed_input_raises(event_type: str, fields: dict[str, Any], error: type) -> None:
    with pytest.raises(error):
        make_event("v", event_type, fields)


@pytest.mark.parametrize("code", ["", "x" * 101, "a b", "<script>", "é", "a\r\nSet-Cookie:x", 42])
def test_bad_visitor_codes_are_refused(code: Any) -> None:
    with pytest.raises((TypeError, ValueError)):
        make_event(code, "PRODUCT", {"ean": "1"})


def test_numbers_are_numbers() -> None:
    fields = make_event("v", "CONVERSION", {"goalId": 1, "revenue": Decimal("19.99")}).fields
    assert fields["revenue"] == 19.99 and isinstance(fields["revenue"], float)
    assert make_event("v", "CONVERSION", {"goalId": 1, "revenue": 5}).fields["revenue"] == 5.0


def test_over_long_strings_are_clipped_to_the_api_limits() -> None:
    page = make_event("v", "PAGE", {"href": "h" * 5000, "title": "t" * 1000}).fields
    assert len(page["href"]) == 2048 and len(page["title"]) == 256
    static = make_event("v", "STATICDATA", {"browser": "b" * 500, "os": "o" * 500}).fields
    assert len(static["browser"]) == 100 and len(static["os"]) == 100
    geo = make_event("v", "GEOLOCATION", {"city": "c" * 101}).fields
    assert len(geo["city"]) == 100
    assert len(make_event("v", "PRODUCT", {"ean": "1" * 300}).fields["ean"]) == 100


def test_maps_are_capped_at_256_entries_and_values_clipped() -> None:
    metadata = {i: ["v"] * 300 for i in range(300)}
    metadata[0] = ["v" * 3000]
    fields = make_event("v", "CONVERSION", {"goalId": 1, "metadata": metadata}).fields
    assert len(fields["metadata"]) == 256
    assert all(len(values) == 256 for i, values in fields["metadata"].items() if i)
    assert fields["metadata"][0] == ["v" * 2048]

    counts = {f"k{i}" + "x" * 3000: 1 for i in range(300)}
    custom = make_event("v", "CUSTOMDATA", {"index": 1, "valuesCountMap": counts}).fields
    assert len(custom["valuesCountMap"]) == 256
    assert all(len(key) == 2048 for key in custom["valuesCountMap"])

    ident = make_event(
        "v", "CUSTOMDATA", {"index": 1, "mappingIdentifier": True, "valuesCountMap": counts}
    ).fields
    assert all(len(key) == 100 for key in ident["valuesCountMap"])


def test_lone_surrogates_are_made_encodable() -> None:
    event = make_event("v", "PRODUCT", {"ean": "ab\ud800cd"})
    assert event.fields["ean"] == "ab?cd"
    event.to_json().encode("utf-8")


def test_an_event_no_request_could_carry_is_refused_at_the_call() -> None:
    metadata = {i: ["\u0001" * 2048] * 256 for i in range(10)}
    with pytest.raises(ValueError, match="body limit"):
        make_event("v", "CONVERSION", {"goalId": 1, "metadata": metadata})


def test_the_body_limit_is_the_data_apis() -> None:
    """Within 20 kB of the API's 3 MB body limit: an event just under it is made, one just
    over is refused (at most 256 values a key, at most 2048 characters a value)."""

    def conversion(values: int) -> dict[str, Any]:
        full = ["x" * 2048] * values
        return {"goalId": 1, "metadata": {i: full[i * 256 : (i + 1) * 256] for i in range(6)}}

    under = make_event("v", "CONVERSION", conversion(1455))
    assert MAX_BODY_BYTES - 20_000 < len(under.to_json().encode()) <= MAX_BODY_BYTES
    with pytest.raises(ValueError, match=r"is 3,0[01]\d,\d{3} bytes as JSON, over .* body limit"):
        make_event("v", "CONVERSION", conversion(1470))


def test_limits_count_utf16_units_so_emoji_count_twice() -> None:
    title = make_event("v", "PAGE", {"href": "h", "title": "😀" * 200}).fields["title"]
    assert title == "😀" * 128
    assert make_event("v", "PRODUCT", {"ean": "a" + "😀" * 99}).fields["ean"] == "a" + "😀" * 49


def test_nonces_do_not_repeat_when_something_seeds_random() -> None:
    random.seed(7)
    first = new_nonce()
    random.seed(7)
    assert new_nonce() != first
