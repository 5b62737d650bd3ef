"""Validating one value and one event against the tables of ``rules.py``.

Both body formats end here: a JSON event is validated as it is, a query-format line is first
read strictly into what the same field would be in JSON, so one event types the same either way.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any, cast

from django_kameleoon.testing.rules import (
    COMMON_FIELDS,
    EVENT_FIELDS,
    INT_RANGES,
    MAPPING_IDENTIFIER_KEY_LIMIT,
    METADATA_MAX_IDS,
    METADATA_MAX_VALUES,
    METADATA_VALUE_LIMIT,
    VALUES_COUNT_MAP_MAX_ENTRIES,
    FieldSpec,
    Kind,
    WireEvent,
)

_INT_TEXT = re.compile(r"-?[0-9]+")
_FLOAT_TEXT = re.compile(r"-?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


# --------------------------------------------------------------------------------------------
# Validating one value
# --------------------------------------------------------------------------------------------


class _Invalid(Exception):
    """A value breaks a rule; the message completes "<EVENTTYPE>.<field> ..."."""


def short_repr(value: object, width: int = 60) -> str:
    """A value's repr, shortened so a 3 MB string cannot flood a violation message."""
    text = repr(value)
    return text if len(text) <= width else f"{text[: width - 1]}…"


def _validate_string(value: object, spec: FieldSpec) -> str:
    if not isinstance(value, str):
        raise _Invalid(f"must be a string, got {short_repr(value)}")
    if _LONE_SURROGATE.search(value):
        raise _Invalid(f"contains a lone surrogate, which UTF-8 cannot carry: {short_repr(value)}")
    if spec.limit is not None and _length(value) > spec.limit:
        raise _Invalid(
            f"has {_length(value)} characters, over the limit of {spec.limit}: {short_repr(value)}"
        )
    if len(value) < spec.min_length:
        raise _Invalid("must not be empty")
    if spec.choices and value not in spec.choices:
        raise _Invalid(f"must be one of {', '.join(spec.choices)}, got {short_repr(value)}")
    if spec.pattern is not None and not re.fullmatch(spec.pattern, value):
        raise _Invalid(f"must match {spec.pattern}, got {short_repr(value)}")
    return value


def _validate_integer(value: object, spec: FieldSpec) -> int:
    # bool is an int subclass in Python, but true/false is not a number on the wire.
    if isinstance(value, bool) or not isinstance(value, int):
        raise _Invalid(f"must be an {spec.kind} integer, got {short_repr(value)}")
    if not _in_range(value, spec.kind):
        raise _Invalid(f"= {value} is out of the {spec.kind} range")
    return value


def _validate_float(value: object, spec: FieldSpec) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _Invalid(f"must be a number, got {short_repr(value)}")
    try:
        number = float(value)
    except OverflowError:
        raise _Invalid(f"= {short_repr(value)} does not fit a float64") from None
    if not math.isfinite(number):
        raise _Invalid(f"must be a finite number, got {value}")
    return number  # JSON 25 and query "25" both become 25.0: one expectation fits both


def _validate_boolean(value: object, spec: FieldSpec) -> bool:
    if not isinstance(value, bool):
        raise _Invalid(f"must be true or false, got {short_repr(value)}")
    return value


def _validate_int_array(value: object, spec: FieldSpec) -> list[int]:
    if not isinstance(value, list):
        raise _Invalid(f"must be a JSON array of integers, got {short_repr(value)}")
    for item in value:
        if isinstance(item, bool) or not isinstance(item, int):
            raise _Invalid(
                f"must hold only integers, got {short_repr(item)} in {short_repr(value)}"
            )
        _validate_integer(item, FieldSpec("int64"))
    return value


def _length(text: str) -> int:
    """Length as a Java server counts it (UTF-16 units): an emoji is two characters.

    The stricter of the two ways Kameleoon may count, so that text our sender clips to a limit
    passes whichever way it does.
    """
    return len(text) if text.isascii() else len(text.encode("utf-16-le", "surrogatepass")) // 2


def _validate_texts(where: str, texts: Iterable[str], limit: int) -> None:
    for text in texts:
        if _length(text) > limit:
            raise _Invalid(
                f"{where} has {_length(text)} characters, over the limit of {limit}: "
                f"{short_repr(text)}"
            )
        if _LONE_SURROGATE.search(text):
            raise _Invalid(f"{where} contains a lone surrogate: {short_repr(text)}")


def _validate_metadata(value: object, spec: FieldSpec) -> dict[str, list[str]]:
    if not isinstance(value, dict):
        raise _Invalid(f"must be a JSON object {{id: [strings]}}, got {short_repr(value)}")
    if len(value) > METADATA_MAX_IDS:
        raise _Invalid(f"has {len(value)} ids, over the limit of {METADATA_MAX_IDS}")
    for key, texts in value.items():
        if not _INT_TEXT.fullmatch(key) or not _in_range(int(key), "int32"):
            raise _Invalid(f"key {short_repr(key)} is not an int32 metadata id")
        if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
            raise _Invalid(
                f"values of id {key} must be a JSON array of strings, got {short_repr(texts)}"
            )
        if len(texts) > METADATA_MAX_VALUES:
            raise _Invalid(
                f"id {key} has {len(texts)} values, over the limit of {METADATA_MAX_VALUES}"
            )
        _validate_texts(f"a value of id {key}", texts, METADATA_VALUE_LIMIT)
    return value


def _validate_values_count_map(value: object, spec: FieldSpec) -> dict[str, int]:
    if not isinstance(value, dict):
        raise _Invalid(f"must be a JSON object {{value: count}}, got {short_repr(value)}")
    if len(value) > VALUES_COUNT_MAP_MAX_ENTRIES:
        raise _Invalid(f"has {len(value)} values, over the limit of {VALUES_COUNT_MAP_MAX_ENTRIES}")
    _validate_texts("a value", value, spec.limit or METADATA_VALUE_LIMIT)
    for key, count in value.items():
        try:
            _validate_integer(count, FieldSpec("int32"))
        except _Invalid as exc:
            raise _Invalid(f"count of {short_repr(key)} {exc}") from None
    return value


def _in_range(number: int, kind: str) -> bool:
    low, high = INT_RANGES[kind]
    return low <= number <= high


_VALIDATORS: dict[Kind, Callable[[object, FieldSpec], Any]] = {
    "string": _validate_string,
    "int32": _validate_integer,
    "int64": _validate_integer,
    "float64": _validate_float,
    "boolean": _validate_boolean,
    "int array": _validate_int_array,
    "metadata": _validate_metadata,
    "values count map": _validate_values_count_map,
}


def field_problem(value: object, spec: FieldSpec) -> str | None:
    """What is wrong with a JSON-typed ``value`` for a field of ``spec``, or None.

    For a value outside any event (the URL query's ``visitorCode``); the message completes
    "<where> ...".
    """
    try:
        _VALIDATORS[spec.kind](value, spec)
    except _Invalid as exc:
        return str(exc)
    return None


def _from_query_text(kind: Kind, text: str) -> Any:
    """Turn a decoded query-format value into what the same field would be in JSON.

    Query format has no types of its own, so each one is read strictly: an integer is
    ``-?[0-9]+`` (not ``1.0``), a float a plain decimal literal (no ``nan``/``inf``), a Boolean
    exactly ``true``/``false``, and JSON-typed fields are JSON text.
    """
    if kind in ("int32", "int64"):
        if not _INT_TEXT.fullmatch(text):
            raise _Invalid(f"must be an {kind} integer, got {short_repr(text)}")
        return int(text)
    if kind == "float64":
        if not _FLOAT_TEXT.fullmatch(text):
            raise _Invalid(f"must be a decimal number, got {short_repr(text)}")
        return float(text)
    if kind == "boolean":
        if text not in ("true", "false"):
            raise _Invalid(f"must be true or false, got {short_repr(text)}")
        return text == "true"
    if kind in ("int array", "metadata", "values count map"):
        problems: list[str] = []
        try:
            value = load_json_strictly(text, problems)
        except ValueError as exc:
            raise _Invalid(f"is not valid JSON ({exc}): {short_repr(text)}") from None
        if problems:
            raise _Invalid("; ".join(problems))
        return value
    return text


def load_json_strictly(text: str, problems: list[str]) -> Any:
    """``json.loads``, strict: NaN/Infinity are not JSON; a key given twice is reported."""

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        result: dict[str, Any] = {}
        for key, value in items:
            if key in result:
                problems.append(f"a JSON object has the key {short_repr(key)} twice")
            result[key] = value
        return result

    def constant(name: str) -> Any:
        raise ValueError(f"{name} is not JSON")

    return json.loads(text, object_pairs_hook=pairs, parse_constant=constant)


# --------------------------------------------------------------------------------------------
# Examining one event
# --------------------------------------------------------------------------------------------


def examine_event(
    raw: Mapping[str, Any], *, from_query: bool, visitor_code: str | None = None
) -> tuple[WireEvent, list[str]]:
    """Validate one event against the tables of ``rules.py``; return it typed, and its problems.

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

    typed: WireEvent = {}
    for name, value in raw.items():
        if name == "visitorCode" and visitor_code is not None:
            continue
        spec = specs.get(name)
        if spec is None:
            if type_known:  # with no known type, every field would look unknown
                problems.append(f"unknown field {label}.{name} = {short_repr(value)}")
            typed[name] = value
            continue
        try:
            plain = _from_query_text(spec.kind, value) if from_query else value
            typed[name] = _VALIDATORS[spec.kind](plain, spec)
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


def _cross_field_problems(event_type: str, event: WireEvent) -> list[str]:
    """The two rules of Kameleoon's page that tie one field to another."""
    problems = []
    if event_type == "PERSONALIZATION" and "unexpositionCause" in event:
        variation = event.get("variationId")
        if variation != 0:
            problems.append(
                "PERSONALIZATION.unexpositionCause is only valid when variationId is 0, "
                f"got variationId {short_repr(variation)}"
            )
    if event_type == "CUSTOMDATA" and event.get("mappingIdentifier") is True:
        values = event.get("valuesCountMap")
        if isinstance(values, dict):
            try:
                _validate_texts("a value", values, MAPPING_IDENTIFIER_KEY_LIMIT)
            except _Invalid as exc:
                problems.append(f"CUSTOMDATA.valuesCountMap, mappingIdentifier being true: {exc}")
    return problems
