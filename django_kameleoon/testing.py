"""A local, strict stand-in for Kameleoon's Data API ``POST /visit/events``.

Why it exists: the real API answers 202 *before* it reads the body, so a sender that gets a
field wrong is never told; the data just goes missing. This server answers the same way, but
checks every request and every event against Kameleoon's own OpenAPI page for the endpoint
(``shared/seed/data-api-visit-events.md``) and records each broken rule in ``violations``.
Tests, ours and our users', can then say "everything arrived, typed right, and nothing was
wrong", and can script the failures a sender must survive (errors, slowness, lost answers,
the API going away and coming back).

Why it stands alone: it imports neither Django nor any other ``django_kameleoon`` module, and
its rule tables are transcribed from the seed page separately from ``events.py``. A test that
checks the package against its own tables cannot catch a misreading of the spec; an
independent oracle can. Standard library only, so it runs anywhere the package is installed.

Usage::

    with DataApiServer(site_code="my-site") as api:
        ...  # point KAMELEOON["DATA_API_URL"] at api.url, make the site send
        api.wait_for_events(2)
        assert api.violations == []
"""

from __future__ import annotations

import contextlib
import copy
import json
import math
import re
import selectors
import socket
import sys
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Literal, cast
from urllib.parse import SplitResult, parse_qsl, urlsplit

__all__ = [
    "COMMON_FIELDS",
    "EVENTS_PATH",
    "EVENT_FIELDS",
    "MAX_BODY_BYTES",
    "DataApiServer",
    "FieldSpec",
    "Headers",
    "ParsedBody",
    "ReceivedRequest",
    "Verdict",
    "check_event",
    "examine_request",
    "parse_body",
]

Event = dict[str, Any]
BodyFormat = Literal["json", "query"]

# --------------------------------------------------------------------------------------------
# The rules, as data, from the seed page
# --------------------------------------------------------------------------------------------

EVENTS_PATH = "/visit/events"
MAX_BODY_BYTES = 3_000_000  # "The body size limit is 3 MB."
# Bodies larger than this are not even read (the connection is closed after the 413); below
# it they are read and discarded, so the client reliably sees the 413 rather than a reset.
_MAX_READ_BYTES = 64 * 1024 * 1024

# The defaults of Python's HTTP libraries: the seed says a server-side sender must overwrite
# the library's User-Agent, or Kameleoon may take it for a bot.
DEFAULT_USER_AGENT_PREFIXES = (
    "python-requests/",
    "python-urllib3/",
    "Python-urllib/",
    "python-httpx/",
)

Kind = Literal[
    "string", "int32", "int64", "float64", "boolean", "int array", "metadata", "values count map"
]


@dataclass(frozen=True)
class FieldSpec:
    """One body parameter: its seed type, whether it is required, and its limits.

    ``limit`` is the most characters of a string. ``choices`` lists an enum's values;
    ``pattern`` is a regular expression the whole string must match.
    """

    kind: Kind
    required: bool = False
    limit: int | None = None
    min_length: int = 0
    choices: tuple[str, ...] = ()
    pattern: str | None = None


EVENT_TYPES = (
    "STATICDATA",
    "PAGE",
    "CONVERSION",
    "TARGETINGSEGMENT",
    "EXPERIMENT",
    "PERSONALIZATION",
    "WEATHER",
    "CUSTOMDATA",
    "PRODUCT",
    "GEOLOCATION",
)
DEVICE_TYPES = ("DESKTOP", "TABLET", "PHONE")
UNEXPOSITION_CAUSES = (
    "GLOBAL_EXCLUSION",
    "PERSONALIZATION_CAPPING",
    "SCHEDULE",
    "PERSONALIZATION_EXCLUSION",
    "VISITOR_CAPPING",
    "SCENARIO",
    "PRIORITY",
)

# Parameters every event carries. visitorCode is required only when the URL query has none,
# which check_event() handles, so it is not marked required here.
COMMON_FIELDS: dict[str, FieldSpec] = {
    "visitorCode": FieldSpec("string", limit=100, min_length=1),
    "nonce": FieldSpec("string", required=True, pattern="[0-9a-fA-F]{16}"),
    "eventType": FieldSpec("string", required=True, choices=EVENT_TYPES),
}

_REQ = True
EVENT_FIELDS: dict[str, dict[str, FieldSpec]] = {
    "STATICDATA": {
        "visitNumber": FieldSpec("int32"),
        "timeSincePreviousVisit": FieldSpec("int64"),
        "browser": FieldSpec("string", limit=100),
        "browserIndex": FieldSpec("int32"),
        "browserVersion": FieldSpec("float64"),
        "os": FieldSpec("string", limit=100),
        "osIndex": FieldSpec("int32"),
        "screenWidth": FieldSpec("int32"),
        "screenHeight": FieldSpec("int32"),
        "localeLanguageTag": FieldSpec("string"),
        "deviceType": FieldSpec("string", choices=DEVICE_TYPES),
    },
    "PAGE": {
        "href": FieldSpec("string", _REQ, limit=2048),
        "canonicalHref": FieldSpec("string", limit=2048),
        "title": FieldSpec("string", limit=256),
        "keyPageIndices": FieldSpec("int array"),
        "referrerHref": FieldSpec("string"),
        "referrerIndices": FieldSpec("int array"),
    },
    "CONVERSION": {
        "goalId": FieldSpec("int64", _REQ),
        "revenue": FieldSpec("float64"),
        "negative": FieldSpec("boolean"),
        "metadata": FieldSpec("metadata"),
    },
    "TARGETINGSEGMENT": {
        "id": FieldSpec("int64", _REQ),
    },
    "EXPERIMENT": {
        "id": FieldSpec("int64", _REQ),
        "variationId": FieldSpec("int64", _REQ),
    },
    "PERSONALIZATION": {
        "id": FieldSpec("int64", _REQ),
        "variationId": FieldSpec("int64", _REQ),
        # Only valid when variationId is 0: see _cross_field_problems().
        "unexpositionCause": FieldSpec("string", choices=UNEXPOSITION_CAUSES),
    },
    "WEATHER": {
        "temperature": FieldSpec("float64", _REQ),
        "humidity": FieldSpec("float64", _REQ),
        "pressure": FieldSpec("float64", _REQ),
        "windSpeed": FieldSpec("float64", _REQ),
        "cloudiness": FieldSpec("float64", _REQ),
        "sunriseTime": FieldSpec("int64", _REQ),
        "sunsetTime": FieldSpec("int64", _REQ),
        "weatherCode": FieldSpec("string", limit=100),
    },
    "CUSTOMDATA": {
        "index": FieldSpec("int32", _REQ),
        "mappingIdentifier": FieldSpec("boolean"),
        # Keys are limited to 2048 characters, or 100 when mappingIdentifier is true.
        "valuesCountMap": FieldSpec("values count map", _REQ, limit=2048),
        "overwrite": FieldSpec("boolean"),
    },
    "PRODUCT": {
        "ean": FieldSpec("string", _REQ, limit=100),
    },
    "GEOLOCATION": {
        "country": FieldSpec("string", limit=100),
        "region": FieldSpec("string", limit=100),
        "city": FieldSpec("string", limit=100),
        "postalCode": FieldSpec("string", limit=100),
        "latitude": FieldSpec("float64"),
        "longitude": FieldSpec("float64"),
    },
}

METADATA_MAX_IDS = 256
METADATA_MAX_VALUES = 256
METADATA_VALUE_LIMIT = 2048
VALUES_COUNT_MAP_MAX_ENTRIES = 256
MAPPING_IDENTIFIER_KEY_LIMIT = 100

_INT_RANGES: dict[str, tuple[int, int]] = {
    "int32": (-(2**31), 2**31 - 1),
    "int64": (-(2**63), 2**63 - 1),
}
_INT_TEXT = re.compile(r"-?[0-9]+")
_FLOAT_TEXT = re.compile(r"-?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")
_BAD_PERCENT = re.compile("%(?![0-9A-Fa-f]{2})")


# --------------------------------------------------------------------------------------------
# Checking one value
# --------------------------------------------------------------------------------------------


class _Invalid(Exception):
    """A value breaks a rule; the message completes "<EVENTTYPE>.<field> ..."."""


def _show(value: object, width: int = 60) -> str:
    """A value's repr, shortened so a 3 MB string cannot flood a violation message."""
    text = repr(value)
    return text if len(text) <= width else f"{text[: width - 1]}…"


def _check_string(value: object, spec: FieldSpec) -> str:
    if not isinstance(value, str):
        raise _Invalid(f"must be a string, got {_show(value)}")
    if _LONE_SURROGATE.search(value):
        raise _Invalid(f"contains a lone surrogate, which UTF-8 cannot carry: {_show(value)}")
    if spec.limit is not None and _length(value) > spec.limit:
        raise _Invalid(
            f"has {_length(value)} characters, over the limit of {spec.limit}: {_show(value)}"
        )
    if len(value) < spec.min_length:
        raise _Invalid("must not be empty")
    if spec.choices and value not in spec.choices:
        raise _Invalid(f"must be one of {', '.join(spec.choices)}, got {_show(value)}")
    if spec.pattern is not None and not re.fullmatch(spec.pattern, value):
        raise _Invalid(f"must match {spec.pattern}, got {_show(value)}")
    return value


def _check_integer(value: object, spec: FieldSpec) -> int:
    # bool is an int subclass in Python, but true/false is not a number on the wire.
    if isinstance(value, bool) or not isinstance(value, int):
        raise _Invalid(f"must be an {spec.kind} integer, got {_show(value)}")
    low, high = _INT_RANGES[spec.kind]
    if not low <= value <= high:
        raise _Invalid(f"= {value} is out of the {spec.kind} range")
    return value


def _check_float(value: object, spec: FieldSpec) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _Invalid(f"must be a number, got {_show(value)}")
    try:
        number = float(value)
    except OverflowError:
        raise _Invalid(f"= {_show(value)} does not fit a float64") from None
    if not math.isfinite(number):
        raise _Invalid(f"must be a finite number, got {value}")
    return number  # JSON 25 and query "25" both become 25.0: one expectation fits both


def _check_boolean(value: object, spec: FieldSpec) -> bool:
    if not isinstance(value, bool):
        raise _Invalid(f"must be true or false, got {_show(value)}")
    return value


def _check_int_array(value: object, spec: FieldSpec) -> list[int]:
    if not isinstance(value, list):
        raise _Invalid(f"must be a JSON array of integers, got {_show(value)}")
    for item in value:
        if isinstance(item, bool) or not isinstance(item, int):
            raise _Invalid(f"must hold only integers, got {_show(item)} in {_show(value)}")
        _check_integer(item, FieldSpec("int64"))
    return value


def _length(text: str) -> int:
    """Length as a Java server counts it (UTF-16 units): an emoji is two characters.

    The stricter of the two ways Kameleoon may count, so that text our sender clips to a limit
    passes whichever way it does.
    """
    return len(text) if text.isascii() else len(text.encode("utf-16-le", "surrogatepass")) // 2


def _check_text_items(where: str, texts: Iterable[str], limit: int) -> None:
    for text in texts:
        if _length(text) > limit:
            raise _Invalid(
                f"{where} has {_length(text)} characters, over the limit of {limit}: {_show(text)}"
            )
        if _LONE_SURROGATE.search(text):
            raise _Invalid(f"{where} contains a lone surrogate: {_show(text)}")


def _check_metadata(value: object, spec: FieldSpec) -> dict[str, list[str]]:
    if not isinstance(value, dict):
        raise _Invalid(f"must be a JSON object {{id: [strings]}}, got {_show(value)}")
    if len(value) > METADATA_MAX_IDS:
        raise _Invalid(f"has {len(value)} ids, over the limit of {METADATA_MAX_IDS}")
    for key, texts in value.items():
        if not _INT_TEXT.fullmatch(key) or not _in_range(int(key), "int32"):
            raise _Invalid(f"key {_show(key)} is not an int32 metadata id")
        if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
            raise _Invalid(
                f"values of id {key} must be a JSON array of strings, got {_show(texts)}"
            )
        if len(texts) > METADATA_MAX_VALUES:
            raise _Invalid(
                f"id {key} has {len(texts)} values, over the limit of {METADATA_MAX_VALUES}"
            )
        _check_text_items(f"a value of id {key}", texts, METADATA_VALUE_LIMIT)
    return value


def _check_values_count_map(value: object, spec: FieldSpec) -> dict[str, int]:
    if not isinstance(value, dict):
        raise _Invalid(f"must be a JSON object {{value: count}}, got {_show(value)}")
    if len(value) > VALUES_COUNT_MAP_MAX_ENTRIES:
        raise _Invalid(f"has {len(value)} values, over the limit of {VALUES_COUNT_MAP_MAX_ENTRIES}")
    _check_text_items("a value", value, spec.limit or METADATA_VALUE_LIMIT)
    for key, count in value.items():
        try:
            _check_integer(count, FieldSpec("int32"))
        except _Invalid as exc:
            raise _Invalid(f"count of {_show(key)} {exc}") from None
    return value


def _in_range(number: int, kind: str) -> bool:
    low, high = _INT_RANGES[kind]
    return low <= number <= high


_CHECKS: dict[Kind, Callable[[object, FieldSpec], Any]] = {
    "string": _check_string,
    "int32": _check_integer,
    "int64": _check_integer,
    "float64": _check_float,
    "boolean": _check_boolean,
    "int array": _check_int_array,
    "metadata": _check_metadata,
    "values count map": _check_values_count_map,
}


def _from_query_text(kind: Kind, text: str) -> Any:
    """Turn a decoded query-format value into what the same field would be in JSON.

    Query format has no types of its own, so each one is read strictly: an integer is
    ``-?[0-9]+`` (not ``1.0``), a float a plain decimal literal (no ``nan``/``inf``), a Boolean
    exactly ``true``/``false``, and JSON-typed fields are JSON text.
    """
    if kind in ("int32", "int64"):
        if not _INT_TEXT.fullmatch(text):
            raise _Invalid(f"must be an {kind} integer, got {_show(text)}")
        return int(text)
    if kind == "float64":
        if not _FLOAT_TEXT.fullmatch(text):
            raise _Invalid(f"must be a decimal number, got {_show(text)}")
        return float(text)
    if kind == "boolean":
        if text not in ("true", "false"):
            raise _Invalid(f"must be true or false, got {_show(text)}")
        return text == "true"
    if kind in ("int array", "metadata", "values count map"):
        problems: list[str] = []
        try:
            value = _json_loads(text, problems)
        except ValueError as exc:
            raise _Invalid(f"is not valid JSON ({exc}): {_show(text)}") from None
        if problems:
            raise _Invalid("; ".join(problems))
        return value
    return text


def _json_loads(text: str, problems: list[str]) -> Any:
    """``json.loads``, strict: NaN/Infinity are not JSON; a key given twice is reported."""

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        result: dict[str, Any] = {}
        for key, value in items:
            if key in result:
                problems.append(f"a JSON object has the key {_show(key)} twice")
            result[key] = value
        return result

    def constant(name: str) -> Any:
        raise ValueError(f"{name} is not JSON")

    return json.loads(text, object_pairs_hook=pairs, parse_constant=constant)


# --------------------------------------------------------------------------------------------
# Checking one event
# --------------------------------------------------------------------------------------------


def check_event(
    raw: Mapping[str, Any], *, from_query: bool, visitor_code: str | None = None
) -> tuple[Event, list[str]]:
    """Check one event against the seed's tables; return it typed, and what is wrong with it.

    ``raw`` is a decoded query-format line (all values ``str``) when ``from_query``, else a
    JSON object. ``visitor_code`` is the URL query's ``visitorCode``: when given, it is the
    event's visitor code and the event's own is ignored, as the API does. A value that breaks
    a rule is kept as received.
    """
    problems: list[str] = []
    event_type = raw.get("eventType")
    type_known = isinstance(event_type, str) and event_type in EVENT_FIELDS
    label = cast(str, event_type) if type_known else "event"
    specs = {**COMMON_FIELDS, **(EVENT_FIELDS[label] if type_known else {})}

    typed: Event = {}
    for name, value in raw.items():
        if name == "visitorCode" and visitor_code is not None:
            continue
        spec = specs.get(name)
        if spec is None:
            if type_known:  # with no known type, every field would look unknown
                problems.append(f"unknown field {label}.{name} = {_show(value)}")
            typed[name] = value
            continue
        try:
            plain = _from_query_text(spec.kind, value) if from_query else value
            typed[name] = _CHECKS[spec.kind](plain, spec)
        except _Invalid as exc:
            problems.append(f"{label}.{name} {exc}")
            typed[name] = value

    problems += [
        f"missing required field {label}.{name}"
        for name, spec in specs.items()
        if spec.required and name not in raw
    ]
    if visitor_code is not None:
        typed["visitorCode"] = visitor_code
    elif "visitorCode" not in raw:
        problems.append(f"missing {label}.visitorCode (the URL query has none either)")
    problems += _cross_field_problems(label, typed)
    return typed, problems


def _cross_field_problems(event_type: str, event: Event) -> list[str]:
    """The two rules of the seed that tie one field to another."""
    problems = []
    if event_type == "PERSONALIZATION" and "unexpositionCause" in event:
        variation = event.get("variationId")
        if variation != 0:
            problems.append(
                "PERSONALIZATION.unexpositionCause is only valid when variationId is 0, "
                f"got variationId {_show(variation)}"
            )
    if event_type == "CUSTOMDATA" and event.get("mappingIdentifier") is True:
        values = event.get("valuesCountMap")
        if isinstance(values, dict):
            try:
                _check_text_items("a value", values, MAPPING_IDENTIFIER_KEY_LIMIT)
            except _Invalid as exc:
                problems.append(f"CUSTOMDATA.valuesCountMap, mappingIdentifier being true: {exc}")
    return problems


# --------------------------------------------------------------------------------------------
# Checking a body and a request
# --------------------------------------------------------------------------------------------


@dataclass
class ParsedBody:
    """A body split into events: each typed, with its problems; plus the body's own problems.

    ``count`` is how many events the body held (lines or array items), valid or not.
    """

    events: list[tuple[Event, list[str]]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    count: int = 0


def parse_body(
    body: bytes, *, body_format: BodyFormat, visitor_code: str | None = None
) -> ParsedBody:
    """Split and check a ``/visit/events`` body in either format."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        return ParsedBody(problems=[f"body is not valid UTF-8: {exc}"])
    if body_format == "json":
        raws, problems, count = _split_json(text)
    else:
        raws, problems, count = _split_query(text)
    if count == 0 and not problems:
        problems.append("body holds no events")
    parsed = ParsedBody(problems=problems, count=count)
    for position, raw in raws:
        event, event_problems = check_event(
            raw, from_query=body_format == "query", visitor_code=visitor_code
        )
        nonce = raw.get("nonce")
        where = f"event {position}" + (f" (nonce {nonce})" if isinstance(nonce, str) else "")
        parsed.events.append((event, [f"{where}: {p}" for p in event_problems]))
    return parsed


_Raws = list[tuple[int, Mapping[str, Any]]]


def _split_json(text: str) -> tuple[_Raws, list[str], int]:
    problems: list[str] = []
    try:
        data = _json_loads(text, problems)
    except ValueError as exc:
        return [], [f"body is not valid JSON: {exc}"], 0
    if not isinstance(data, list):
        return [], [f"body must be a JSON array of events, got a {type(data).__name__}"], 0
    raws: _Raws = []
    for position, item in enumerate(data, 1):
        if isinstance(item, dict):
            raws.append((position, item))
        else:
            problems.append(f"event {position} is not a JSON object: {_show(item)}")
    return raws, problems, len(data)


def _split_query(text: str) -> tuple[_Raws, list[str], int]:
    """One event per line, ``name=value&...``, values percent-encoded.

    Splitting on ``&`` and ``=`` happens before decoding (``parse_qsl``), which is what makes an
    encoded ``%26`` or ``%3D`` inside a value safe. Percent escapes must decode as UTF-8.
    """
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()  # the new line that ends the last line
    raws: _Raws = []
    problems: list[str] = []
    for position, line in enumerate(lines, 1):
        line = line.removesuffix("\r")
        if not line:
            problems.append(f"event {position} is an empty line")
            continue
        bad_escape = _BAD_PERCENT.search(line)
        if bad_escape:
            snippet = line[bad_escape.start() : bad_escape.start() + 3]
            problems.append(f"event {position} has a malformed percent escape {snippet!r}")
            continue
        try:
            pairs = parse_qsl(line, keep_blank_values=True, strict_parsing=True, errors="strict")
        except ValueError as exc:
            problems.append(f"event {position} is not URL-encoded name=value pairs: {exc}")
            continue
        fields: dict[str, str] = {}
        for name, value in pairs:
            if name in fields:
                problems.append(f"event {position} has the field {name!r} twice")
            fields[name] = value
        raws.append((position, fields))
    return raws, problems, len(lines)


@dataclass
class Verdict:
    """What the API makes of a request: the status it answers, and everything wrong."""

    status: int
    query: dict[str, str]
    body_format: BodyFormat
    problems: list[str]
    body: ParsedBody | None = None  # None when the request is refused before the body is read


def examine_request(
    query: str, headers: Mapping[str, str], body: bytes, *, site_code: str | None = None
) -> Verdict:
    """Check a ``POST /visit/events`` request: URL query, headers, size, then the body.

    Only a malformed URL query (400) or an oversized body (413) is refused; everything else is
    answered 202 and its problems recorded, as the real API accepts before it checks.
    """
    try:
        pairs = parse_qsl(query, keep_blank_values=True, strict_parsing=True, errors="strict")
    except ValueError as exc:
        return Verdict(400, {}, "query", [f"URL query is malformed: {exc}"])
    params: dict[str, str] = {}
    problems: list[str] = []
    for name, value in pairs:
        if name in params:
            problems.append(f"URL query parameter {name} is given twice")
        params[name] = value
    json_flag = params.get("json", "false")
    body_format: BodyFormat = "json" if json_flag == "true" else "query"

    def refuse(status: int, problem: str) -> Verdict:
        return Verdict(status, params, body_format, [*problems, problem])

    if "siteCode" not in params:
        return refuse(400, "URL query lacks the required siteCode")
    if json_flag not in ("true", "false"):
        return refuse(400, f"URL query json={json_flag!r} must be true or false")
    if len(body) > MAX_BODY_BYTES:
        return refuse(413, f"body is {len(body):,} bytes, over the {MAX_BODY_BYTES:,}-byte limit")

    if site_code is not None and params["siteCode"] != site_code:
        problems.append(f"siteCode {params['siteCode']!r} is not this server's {site_code!r}")
    problems += _user_agent_problems(headers.get("User-Agent"))
    visitor_code = params.get("visitorCode")
    if visitor_code is not None:
        try:
            _check_string(visitor_code, COMMON_FIELDS["visitorCode"])
        except _Invalid as exc:
            problems.append(f"URL query visitorCode {exc}")
    parsed = parse_body(body, body_format=body_format, visitor_code=visitor_code)
    return Verdict(202, params, body_format, problems + parsed.problems, parsed)


def _user_agent_problems(user_agent: str | None) -> list[str]:
    if not user_agent:
        return ["User-Agent header is missing; the seed says to set our own"]
    if user_agent.startswith(DEFAULT_USER_AGENT_PREFIXES):
        return [f"User-Agent {user_agent!r} is the HTTP library's default; set our own"]
    return []


# --------------------------------------------------------------------------------------------
# What was received
# --------------------------------------------------------------------------------------------


class Headers(Mapping[str, str]):
    """Request headers with case-insensitive lookup, as HTTP defines them.

    Iterating gives the names as sent; a header sent twice is joined with ", ".
    """

    def __init__(self, items: Iterable[tuple[str, str]] = ()) -> None:
        self._items: dict[str, tuple[str, str]] = {}
        for name, value in items:
            key = name.lower()
            if key in self._items:
                name, value = self._items[key][0], f"{self._items[key][1]}, {value}"
            self._items[key] = (name, value)

    def __getitem__(self, name: str) -> str:
        return self._items[name.lower()][1]

    def __iter__(self) -> Iterator[str]:
        return (name for name, _ in self._items.values())

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        return f"Headers({dict(self._items.values())!r})"


@dataclass(frozen=True)
class ReceivedRequest:
    """One request as the server saw it, and how it answered.

    ``status`` is None when the server answered nothing (a ``drop()`` fault, or stopped
    mid-request). ``fault`` names the scripted fault applied, if any. ``at`` is
    ``time.monotonic()`` when the request's headers arrived, for measuring retry backoff.
    """

    method: str
    path: str
    query: dict[str, str]
    headers: Headers
    body: bytes = field(repr=False)
    body_size: int
    body_format: BodyFormat
    event_count: int
    status: int | None
    at: float
    fault: str | None = None


@dataclass(frozen=True)
class _Fault:
    kind: Literal["fail", "delay", "drop"]
    status: int = 0
    seconds: float = 0.0
    headers: tuple[tuple[str, str], ...] = ()
    accept: bool = False  # drop only: process the events, then lose the answer


# --------------------------------------------------------------------------------------------
# The server
# --------------------------------------------------------------------------------------------


class DataApiServer:
    """A real HTTP server on a local port that plays the Data API strictly. See module doc.

    Thread-safe: requests are handled on their own threads; every read returns a copy taken
    under one lock, and waiting is on a condition, never a sleep loop.
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        site_code: str | None = None,
        on_event: Callable[[dict[str, Any]], None] | None = None,
        on_violation: Callable[[str], None] | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.site_code = site_code
        self.on_event = on_event
        self.on_violation = on_violation
        self._condition = threading.Condition()
        self._events: list[Event] = []
        self._by_nonce: dict[str, Event] = {}
        self._duplicates: list[Event] = []
        self._requests: list[ReceivedRequest] = []
        self._violations: list[str] = []
        self._faults: deque[_Fault] = deque()
        self._connections: set[socket.socket] = set()
        self._httpd: _HttpServer | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._wake_reader: socket.socket | None = None
        self._wake_writer: socket.socket | None = None

    # -- lifecycle ----------------------------------------------------------------------

    def start(self) -> DataApiServer:
        """Bind (port 0 picks a free one, kept for later restarts) and serve on a daemon thread."""
        if self._httpd is not None:
            raise RuntimeError(f"DataApiServer is already serving on {self.url}")
        httpd = _HttpServer((self.host, self.port), self)
        self.port = httpd.server_address[1]
        self._httpd = httpd
        self._stopping = threading.Event()
        self._wake_reader, self._wake_writer = socket.socketpair()
        self._thread = threading.Thread(
            target=self._serve,
            args=(httpd, self._wake_reader, self._stopping),
            name=f"DataApiServer:{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop at once: close the port and every open connection, as if the API went away.

        Keeps ``port``, so a later ``start()`` comes back on the same address.
        """
        httpd, thread = self._httpd, self._thread
        if httpd is None or thread is None:
            return
        self._stopping.set()
        if self._wake_writer is not None:
            self._wake_writer.send(b"x")
        thread.join()
        httpd.server_close()
        with self._condition:
            connections = list(self._connections)
        for connection in connections:  # keep-alive connections would outlive the port
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
        for end in (self._wake_reader, self._wake_writer):
            if end is not None:
                end.close()
        self._httpd = self._thread = self._wake_reader = self._wake_writer = None

    def __enter__(self) -> DataApiServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """The base URL, without path: what ``DATA_API_URL`` should be set to."""
        if self.port == 0:
            raise RuntimeError("DataApiServer has no port until start()")
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @staticmethod
    def _serve(httpd: _HttpServer, wake: socket.socket, stopping: threading.Event) -> None:
        # Our own loop rather than serve_forever(), whose shutdown waits out a poll interval:
        # a wake-up socket makes stop() immediate, which keeps test suites fast.
        with selectors.DefaultSelector() as selector:
            selector.register(httpd, selectors.EVENT_READ)
            selector.register(wake, selectors.EVENT_READ)
            while not stopping.is_set():
                for key, _mask in selector.select():
                    if key.fileobj is httpd and not stopping.is_set():
                        httpd.handle_request()

    # -- scripted faults ----------------------------------------------------------------

    def fail(self, status: int, *, times: int = 1, headers: dict[str, str] | None = None) -> None:
        """Answer the next ``times`` POSTs with ``status`` (and ``headers``); accept nothing."""
        if not 100 <= status <= 599:
            raise ValueError(f"status must be an HTTP status code, got {status}")
        self._add_fault(
            _Fault("fail", status=status, headers=tuple((headers or {}).items())), times
        )

    def delay(self, seconds: float, *, times: int = 1) -> None:
        """Sleep ``seconds`` before handling the next ``times`` POSTs normally: a slow API."""
        if seconds < 0:
            raise ValueError(f"seconds must be >= 0, got {seconds}")
        self._add_fault(_Fault("delay", seconds=seconds), times)

    def drop(self, *, times: int = 1, accept: bool = False) -> None:
        """Read the next ``times`` POSTs, then close the connection without an answer.

        By default the events are not accepted (the request died on the way in). With
        ``accept=True`` they are, and only the answer is lost: the case nonces exist for,
        where the sender's retry must land in ``duplicates``.
        """
        self._add_fault(_Fault("drop", accept=accept), times)

    def _add_fault(self, fault: _Fault, times: int) -> None:
        if times < 1:
            raise ValueError(f"times must be >= 1, got {times}")
        with self._condition:
            self._faults.extend([fault] * times)

    def _next_fault(self) -> _Fault | None:
        with self._condition:
            return self._faults.popleft() if self._faults else None

    def _pause(self, seconds: float) -> bool:
        """Wait ``seconds``; False when stop() cut the wait short (the request is then lost)."""
        stopping = self._stopping
        return not stopping.wait(seconds)

    # -- what was received --------------------------------------------------------------

    @property
    def events(self) -> list[dict[str, Any]]:
        """Accepted events, one per nonce, in arrival order, typed the same in both formats."""
        with self._condition:
            return copy.deepcopy(self._events)

    @property
    def duplicates(self) -> list[dict[str, Any]]:
        """Events whose nonce had already been accepted: a retry after a lost answer."""
        with self._condition:
            return copy.deepcopy(self._duplicates)

    @property
    def requests(self) -> list[ReceivedRequest]:
        """Every request, answered or not, in arrival order."""
        with self._condition:
            return list(self._requests)

    @property
    def violations(self) -> list[str]:
        """Every broken rule, human readable. Empty means the sender did everything right."""
        with self._condition:
            return list(self._violations)

    def wait_for_events(self, count: int, timeout: float = 10.0) -> list[dict[str, Any]]:
        """Block until at least ``count`` events were accepted; AssertionError at the deadline."""
        self._wait(lambda: len(self._events) >= count, f"{count} events", timeout)
        return self.events

    def wait_for_requests(self, count: int, timeout: float = 10.0) -> list[ReceivedRequest]:
        """Block until at least ``count`` requests arrived; AssertionError at the deadline."""
        self._wait(lambda: len(self._requests) >= count, f"{count} requests", timeout)
        return self.requests

    def _wait(self, done: Callable[[], bool], what: str, timeout: float) -> None:
        with self._condition:
            if self._condition.wait_for(done, timeout):
                return
            raise AssertionError(
                f"waited {timeout}s for {what} at {self.url}{EVENTS_PATH}, got "
                f"{len(self._events)} events ({len(self._duplicates)} duplicates) in "
                f"{len(self._requests)} requests; violations: {self._violations or 'none'}"
            )

    def reset(self) -> None:
        """Forget everything received and every pending fault, for the next test."""
        with self._condition:
            self._events.clear()
            self._by_nonce.clear()
            self._duplicates.clear()
            self._requests.clear()
            self._violations.clear()
            self._faults.clear()

    # -- recording (called from the handler threads) --------------------------------------

    def _record(self, request: ReceivedRequest, verdict: Verdict | None) -> None:
        """Store a request and, when it was accepted, its events; then tell the callbacks.

        A retried event (same nonce, same content) lands in ``duplicates`` without repeating
        its violations; a nonce reused for a different event is itself a violation.
        """
        violations = list(verdict.problems) if verdict else []
        accepted: list[Event] = []
        parsed = verdict.body if verdict and verdict.status == 202 else None
        with self._condition:
            for event, problems in parsed.events if parsed else []:
                nonce = event.get("nonce")
                original = self._by_nonce.get(nonce) if isinstance(nonce, str) else None
                if original is not None:
                    self._duplicates.append(event)
                    if original != event:
                        violations.append(
                            f"nonce {nonce} was reused for a different event: {_show(event, 200)}"
                        )
                    continue
                if isinstance(nonce, str):
                    self._by_nonce[nonce] = event
                self._events.append(event)
                accepted.append(event)
                violations += problems
            self._violations += violations
            self._requests.append(request)
            self._condition.notify_all()
        self._notify(accepted, violations)

    def _notify(self, accepted: list[Event], violations: list[str]) -> None:
        # A failing callback is the caller's bug: show it, but keep serving the sender.
        try:
            if self.on_violation is not None:
                for violation in violations:
                    self.on_violation(violation)
            if self.on_event is not None:
                for event in accepted:
                    self.on_event(copy.deepcopy(event))
        except Exception:
            traceback.print_exc(file=sys.stderr)

    def _connection_opened(self, connection: socket.socket) -> None:
        with self._condition:
            self._connections.add(connection)

    def _connection_closed(self, connection: socket.socket) -> None:
        with self._condition:
            self._connections.discard(connection)


class _HttpServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], api: DataApiServer) -> None:
        self.api = api
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client hanging up, or stop() cutting a connection, is routine here.
        if not isinstance(sys.exc_info()[1], OSError):
            super().handle_error(request, client_address)


class _BadFraming(Exception):
    """The body's length cannot be known: bad Content-Length or chunked encoding."""


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as real senders use it
    server_version = "KameleoonDataApiStandIn/1"
    timeout = 60  # an idle keep-alive connection must not hold a thread forever

    @property
    def api(self) -> DataApiServer:
        return cast(_HttpServer, self.server).api

    def setup(self) -> None:
        super().setup()
        self.api._connection_opened(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.api._connection_closed(self.connection)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: tests read ``requests`` instead of stderr."""

    def do_POST(self) -> None:
        arrived = time.monotonic()
        url = urlsplit(self.path)
        headers = Headers((name, str(value)) for name, value in self.headers.items())
        try:
            body = self._read_body()
        except _BadFraming as exc:
            self.close_connection = True
            refused = Verdict(400, {}, "query", [f"{self.command} {url.path}: {exc}"])
            self._conclude(arrived, url, headers, b"", refused, status=400)
            return
        if url.path != EVENTS_PATH or self.command != "POST":
            wrong = self._wrong_place(url)
            self._conclude(arrived, url, headers, body, wrong, status=wrong.status)
            return

        fault = self.api._next_fault()
        if fault is not None and fault.kind == "delay" and not self.api._pause(fault.seconds):
            fault = _Fault("drop")  # stop() during the delay: the answer is lost
        if fault is not None and fault.kind == "fail":  # the API never gets to the body
            self._conclude(arrived, url, headers, body, None, fault=fault, status=fault.status)
            return
        verdict = None
        if fault is None or fault.kind == "delay" or fault.accept:
            verdict = examine_request(url.query, headers, body, site_code=self.api.site_code)
        if fault is not None and fault.kind == "drop":
            self.close_connection = True
            self._conclude(arrived, url, headers, body, verdict, fault=fault, status=None)
            return
        assert verdict is not None
        self._conclude(arrived, url, headers, body, verdict, fault=fault, status=verdict.status)

    # Every other method reaches the same place, to be answered 404 or 405 and recorded.
    do_GET = do_HEAD = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = do_POST

    def _wrong_place(self, url: SplitResult) -> Verdict:
        if url.path != EVENTS_PATH:
            status, problem = 404, f"{self.command} {url.path}: only POST {EVENTS_PATH} exists"
        else:
            status, problem = 405, f"{self.command} {EVENTS_PATH}: only POST is allowed"
        return Verdict(status, {}, "query", [problem])

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return self._read_chunked()
        length_text = self.headers.get("Content-Length")
        if length_text is None:
            return b""
        if not length_text.strip().isdigit():
            raise _BadFraming(f"Content-Length {length_text!r} is not a number")
        length = int(length_text)
        if length > _MAX_READ_BYTES:
            raise _BadFraming(f"Content-Length {length:,} is far over the 3 MB limit")
        return self.rfile.read(length)

    def _read_chunked(self) -> bytes:
        chunks: list[bytes] = []
        size = 0
        while True:
            line = self.rfile.readline(1024)
            try:
                chunk_size = int(line.split(b";")[0].strip(), 16)
            except ValueError:
                raise _BadFraming(f"bad chunk size line {line!r}") from None
            if chunk_size == 0:
                break
            size += chunk_size
            if size > _MAX_READ_BYTES:
                raise _BadFraming("chunked body is far over the 3 MB limit")
            chunks.append(self.rfile.read(chunk_size))
            self.rfile.readline(8)  # the CRLF after each chunk
        while self.rfile.readline(8192) not in (b"\r\n", b"\n", b""):
            pass  # trailers
        return b"".join(chunks)

    def _conclude(
        self,
        arrived: float,
        url: SplitResult,
        headers: Headers,
        body: bytes,
        verdict: Verdict | None,
        *,
        status: int | None,
        fault: _Fault | None = None,
    ) -> None:
        """Record the request, then answer ``status`` (None: close the connection unanswered).

        ``verdict`` is None when the request was not examined (a ``fail`` or plain ``drop``
        fault): it is recorded, but its events are not accepted. Recording comes first, so
        once a client has its answer, ``events`` already holds what it sent.
        """
        parsed = verdict.body if verdict else None
        request = ReceivedRequest(
            method=self.command,
            path=url.path,
            query=_loose_query(url.query),
            headers=headers,
            body=body,
            body_size=len(body),
            body_format=_body_format_of(url.query),
            event_count=parsed.count if parsed else _count_events(url.query, body),
            status=status,
            at=arrived,
            fault=fault.kind if fault else None,
        )
        self.api._record(request, verdict)
        if status is None:
            return
        self.send_response(status)
        for name, value in fault.headers if fault else ():
            self.send_header(name, value)
        if status == 405:
            self.send_header("Allow", "POST")
        self.send_header("Content-Length", "0")
        self.end_headers()


def _loose_query(query: str) -> dict[str, str]:
    return dict(parse_qsl(query, keep_blank_values=True))


def _body_format_of(query: str) -> BodyFormat:
    return "json" if _loose_query(query).get("json") == "true" else "query"


def _count_events(query: str, body: bytes) -> int:
    """How many events a body holds, cheaply, for requests that were not examined."""
    if _body_format_of(query) == "query":
        return len(body.rstrip(b"\n").split(b"\n")) if body.strip() else 0
    try:
        data = json.loads(body)
    except ValueError:
        return 0
    return len(data) if isinstance(data, list) else 0
