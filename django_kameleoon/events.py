"""The Data API's ten event types: their fields, the API's limits, and both wire formats.

Everything here follows Kameleoon's page for ``POST /visit/events``, kept in the repository as
``docs/data-api-visit-events.md``. Input is checked at the call so that a mistake raises where
it was made, not in a background thread minutes later: structurally wrong values raise
``TypeError``/``ValueError``, while over-long text is clipped to the API's limits (text comes
from visitors and must never turn a page view into an error).
"""

from __future__ import annotations

import json
import math
import random
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Protocol
from urllib.parse import quote

__all__ = [
    "EVENT_TYPES",
    "FIELDS",
    "MAX_BODY_BYTES",
    "URL_FIELDS",
    "VISITOR_CODE_RE",
    "Event",
    "PendingEvents",
    "SharedFields",
    "clip",
    "make_event",
    "new_nonce",
    "normalise_fields",
    "reseed_nonces",
    "validate_visitor_code",
]

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

#: A visitor code we accept: what the API takes (up to 100 characters), and nothing that could
#: break out of a cookie, a header or an HTML attribute.
VISITOR_CODE_RE = re.compile(r"[A-Za-z0-9_-]{1,100}")

#: The Data API refuses bodies over 3 MB (3,000,000 bytes); so no single event may be larger.
MAX_BODY_BYTES = 3_000_000

INT32 = (-(2**31), 2**31 - 1)
INT64 = (-(2**63), 2**63 - 1)
_INT_RANGES = {"int32": INT32, "int64": INT64}
MAX_MAP_ENTRIES = 256
MAX_MAP_VALUE = 2048
MAX_MAPPING_IDENTIFIER = 100

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


@dataclass(frozen=True)
class Field:
    """One field of an event type: its kind, whether it is required, and its length limit."""

    kind: str
    required: bool = False
    limit: int | None = None
    choices: tuple[str, ...] = ()


_STR100 = Field("str", limit=100)
_URL = Field("str", limit=2048)
_INT32 = Field("int32")
_ID = Field("int64", required=True)
_FLOAT = Field("float")
_REQUIRED_FLOAT = Field("float", required=True)
_REQUIRED_TIME = Field("int64", required=True)

FIELDS: dict[str, dict[str, Field]] = {
    "STATICDATA": {
        "visitNumber": _INT32,
        "timeSincePreviousVisit": Field("int64"),
        "browser": _STR100,
        "browserIndex": _INT32,
        "browserVersion": _FLOAT,
        "os": _STR100,
        "osIndex": _INT32,
        "screenWidth": _INT32,
        "screenHeight": _INT32,
        # No limit on the page; a language tag is short (RFC 5646 allows 35 in practice).
        "localeLanguageTag": Field("str", limit=35),
        "deviceType": Field("enum", choices=DEVICE_TYPES),
    },
    "PAGE": {
        "href": Field("str", required=True, limit=2048),
        "canonicalHref": _URL,
        "title": Field("str", limit=256),
        "keyPageIndices": Field("indices"),
        # No limit on the page for the referrer; it is a URL, so it gets the URL limit.
        "referrerHref": _URL,
        "referrerIndices": Field("indices"),
    },
    "CONVERSION": {
        "goalId": _ID,
        "revenue": _FLOAT,
        "negative": Field("bool"),
        "metadata": Field("metadata"),
    },
    "TARGETINGSEGMENT": {"id": _ID},
    "EXPERIMENT": {"id": _ID, "variationId": _ID},
    "PERSONALIZATION": {
        "id": _ID,
        "variationId": _ID,
        "unexpositionCause": Field("enum", choices=UNEXPOSITION_CAUSES),
    },
    "WEATHER": {
        "temperature": _REQUIRED_FLOAT,
        "humidity": _REQUIRED_FLOAT,
        "pressure": _REQUIRED_FLOAT,
        "windSpeed": _REQUIRED_FLOAT,
        "cloudiness": _REQUIRED_FLOAT,
        "sunriseTime": _REQUIRED_TIME,
        "sunsetTime": _REQUIRED_TIME,
        "weatherCode": _STR100,
    },
    "CUSTOMDATA": {
        "index": Field("int32", required=True),
        "mappingIdentifier": Field("bool"),
        "valuesCountMap": Field("counts", required=True),
        "overwrite": Field("bool"),
    },
    "PRODUCT": {"ean": Field("str", required=True, limit=100)},
    "GEOLOCATION": {
        "country": _STR100,
        "region": _STR100,
        "city": _STR100,
        "postalCode": _STR100,
        "latitude": _FLOAT,
        "longitude": _FLOAT,
    },
}

#: The fields that hold a URL, by event type: those ``redaction`` cleans before sending.
URL_FIELDS: dict[str, frozenset[str]] = {
    "PAGE": frozenset({"href", "canonicalHref", "referrerHref"}),
}


def new_nonce() -> str:
    """16 hex characters, made once per event so that a retried event is recognised as such.

    A nonce must be unique, not secret, so a Mersenne Twister of our own makes it without a
    system call per event: seeded from the OS, reseeded in a forked child, and private, so
    that a ``random.seed()`` elsewhere (test tools do it) cannot make nonces repeat.
    """
    return f"{_random_bits(64):016x}"


_nonce_source = random.Random()
_random_bits = _nonce_source.getrandbits


def reseed_nonces() -> None:
    """Reseed the nonce source from the OS: a forked child must not repeat its parent's nonces.

    ``lifecycle.after_fork_in_child`` runs it in every forked child, however it was forked.
    """
    _nonce_source.seed()


class Event:
    """One event for one visitor, ready for the wire; its nonce never changes."""

    __slots__ = ("event_type", "fields", "nonce", "visitor_code")

    def __init__(
        self,
        visitor_code: str,
        event_type: str,
        fields: dict[str, Any],
        nonce: str | None = None,
    ) -> None:
        self.visitor_code = visitor_code
        self.event_type = event_type
        self.fields = fields
        self.nonce = nonce or new_nonce()

    def as_dict(self) -> dict[str, Any]:
        """The event as the API names it: visitorCode, nonce, eventType and the type's fields."""
        return {
            "visitorCode": self.visitor_code,
            "nonce": self.nonce,
            "eventType": self.event_type,
            **self.fields,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Event:
        """The event that :meth:`as_dict` gave, nonce included: a task queue carries events as
        plain JSON, and a redelivered one must keep its nonce for the API to drop it."""
        fields = dict(data)
        return cls(fields.pop("visitorCode"), fields.pop("eventType"), fields, fields.pop("nonce"))

    def to_json(self) -> str:
        """One element of a ``json=true`` body: :meth:`as_dict` as JSON, its fields encoded once
        for every event that carries the same ones (:func:`_encoded_fields`)."""
        head = (
            f'{{"visitorCode":{_json_string(self.visitor_code)},'
            f'"nonce":{_json_string(self.nonce)},"eventType":{_json_string(self.event_type)}'
        )
        fields = _encoded_fields(self.fields, _json_members)
        return f"{head},{fields}}}" if fields else head + "}"

    def to_query_line(self) -> str:
        """One line of a query-format body, every value URL-encoded."""
        head = (
            f"visitorCode={_query_value(self.visitor_code)}&nonce={_query_value(self.nonce)}"
            f"&eventType={_query_value(self.event_type)}"
        )
        fields = _encoded_fields(self.fields, _query_pairs)
        return f"{head}&{fields}" if fields else head

    def __repr__(self) -> str:
        return f"<Event {self.event_type} {self.visitor_code} {self.fields!r}>"


class PendingEvents(Protocol):
    """``count`` events not made yet, which ``build()`` makes (``BaseBackend.send_later``).

    What a request knows of a page view (``pageview.PageView``) is all it takes to make its
    events, and making them costs less off the request path, in the sender thread.
    """

    count: int

    def build(self) -> list[Event]: ...


def _query_value(value: Any) -> str:
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, str):
        return quote(value, safe="")
    # Numbers, and the JSON-typed fields (metadata, valuesCountMap, index arrays), as JSON.
    return quote(_to_json(value), safe="")


#: One encoder for every event: values are our own plain dicts and lists, never circular.
_to_json = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), check_circular=False).encode
_json_string = json.encoder.encode_basestring  # a str as JSON, as ``_to_json`` writes it


def _json_members(fields: Mapping[str, Any]) -> str:
    """``fields`` as the members of a JSON object, without its braces."""
    return _to_json(fields)[1:-1]


def _query_pairs(fields: Mapping[str, Any]) -> str:
    """``fields`` as ``name=value`` pairs of a query line."""
    return "&".join(f"{name}={_query_value(value)}" for name, value in fields.items())


#: Encoded fields by content, for the sender: a site's STATICDATA is the same for every visitor
#: with the same browser and language, a PAGE's for every view of a popular page from the same
#: referrer. Bounded in entries and in the length of what it keeps, so that a flood of distinct
#: URLs cannot grow it (it is emptied when full: some 1 MB at the most).
ENCODED_CACHE_SIZE = 2048
ENCODED_CACHE_LENGTH = 512
_encoded: dict[tuple[Any, ...], str] = {}


class SharedFields(dict[str, Any]):
    """Fields that many events carry, made once and never changed afterwards: a browser's
    STATICDATA (``pageview.static_fields``), a page's PAGE from one referrer
    (``Settings.plain_page_fields``).

    Each encoding of them is made once too, and kept with them for as long as the cache that
    made them keeps them, so the sender encodes only what differs from one event to the next
    (the visitor code and the nonce). :func:`_encoded_fields`' cache by content, which a site
    of more distinct browsers and pages than it holds empties over and over, is left to the
    fields of other events.
    """

    __slots__ = ("encodings",)

    def __init__(self, fields: Mapping[str, Any]) -> None:
        super().__init__(fields)
        self.encodings: dict[Callable[[Mapping[str, Any]], str], str] = {}


def _encoded_fields(fields: Mapping[str, Any], encode: Callable[[Mapping[str, Any]], str]) -> str:
    """``encode(fields)``, from the cache when the same fields were encoded before.

    Keyed on the values and their types, so ``1``, ``1.0`` and ``True`` stay apart (equal
    values of one type encode alike: ``0.0`` and ``-0.0`` are both zero to the API). Fields
    holding a list or a map (metadata, indices) are not hashable, and are encoded each time.
    :class:`SharedFields` keep their encodings themselves and never enter this cache.
    """
    if type(fields) is SharedFields:
        text = fields.encodings.get(encode)
        if text is None:
            text = fields.encodings[encode] = encode(fields)
        return text
    values = fields.values()
    try:
        key = (encode, *fields, *values, *map(type, values))
        text = _encoded.get(key)
    except TypeError:
        return encode(fields)
    if text is None:
        text = encode(fields)
        if len(text) <= ENCODED_CACHE_LENGTH:
            if len(_encoded) >= ENCODED_CACHE_SIZE:
                _encoded.clear()
            _encoded[key] = text
    return text


def clip(value: str, limit: int | None) -> str:
    """Cut text to the API's limit and make it encodable (lone surrogates become ``?``).

    Non-ASCII text is measured in UTF-16 units, as a Java server counts it: an emoji counts
    twice, so clipped text fits whichever way Kameleoon counts.
    """
    if limit is not None and len(value) > limit:
        value = value[:limit]
    if value.isascii():
        return value
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        value = value.encode("utf-8", "replace").decode("utf-8")
    if limit is not None:
        excess = len(value.encode("utf-16-le")) // 2 - limit
        while excess > 0:
            excess -= 2 if ord(value[-1]) > 0xFFFF else 1
            value = value[:-1]
    return value


def validate_visitor_code(code: Any) -> str:
    """Return ``code`` if it is a visitor code the API and a cookie can carry, else raise."""
    if not isinstance(code, str):
        raise TypeError(f"a visitor code must be a str, not {type(code).__name__}")
    if not VISITOR_CODE_RE.fullmatch(code):
        raise ValueError(
            f"invalid visitor code {code[:120]!r}: "
            "use 1 to 100 characters of A-Z, a-z, 0-9, '_' and '-'"
        )
    return code


def make_event(visitor_code: str, event_type: str, fields: Mapping[str, Any]) -> Event:
    """Check the visitor code and ``fields`` against the event type's table, or raise."""
    if type(visitor_code) is not str or not _is_visitor_code(visitor_code):
        validate_visitor_code(visitor_code)
    return Event(visitor_code, event_type, normalise_fields(event_type, fields))


def normalise_fields(
    event_type: str, fields: Mapping[str, Any], *, partial: bool = False
) -> dict[str, Any]:
    """``fields`` as the API takes them: checked, converted and clipped; ``None`` left out.

    The one place where field values are judged, whoever builds the event (the public
    functions, the template tags, the middleware). Raises ``TypeError``/``ValueError`` for a
    field the type does not have or a value of the wrong kind. ``partial=True`` checks a part
    of an event (what ``{% kameleoon_page %}`` sets) without asking for the required fields.
    """
    spec = FIELDS.get(event_type) if isinstance(event_type, str) else None
    if spec is None:
        raise _unknown_event_type(event_type)
    values: dict[str, Any] = {}
    for name, value in fields.items():
        field = spec.get(name)
        if field is None:
            raise TypeError(f"{event_type} has no field {name!r}; its fields are {', '.join(spec)}")
        if value is not None:
            values[name] = _normalise(event_type, name, value, field, fields)
    if not partial and not values.keys() >= _REQUIRED[event_type]:
        missing = [name for name, field in spec.items() if field.required and name not in values]
        raise TypeError(f"{event_type} requires {', '.join(missing)}")
    if event_type == "PERSONALIZATION":
        _check_personalization(values)
    if "metadata" in values or "valuesCountMap" in values:
        _check_size(event_type, values)
    return values


_is_visitor_code = VISITOR_CODE_RE.fullmatch
_REQUIRED = {
    event_type: frozenset(name for name, field in spec.items() if field.required)
    for event_type, spec in FIELDS.items()
}


def _unknown_event_type(event_type: Any) -> Exception:
    if not isinstance(event_type, str):
        return TypeError(f"event_type must be a str, not {type(event_type).__name__}")
    return ValueError(f"unknown event type {event_type!r}; use one of {', '.join(EVENT_TYPES)}")


def _normalise(
    event_type: str, name: str, value: Any, field: Field, fields: Mapping[str, Any]
) -> Any:
    """The value as the API takes it; a fast path for the plain values most calls carry."""
    kind = field.kind
    value_type = type(value)
    if value_type is str and kind == "str" and value.isascii():
        return value if field.limit is None or len(value) <= field.limit else value[: field.limit]
    if value_type is float and kind == "float" and math.isfinite(value):
        return value
    if value_type is int and kind in _INT_RANGES:
        low, high = _INT_RANGES[kind]
        if low <= value <= high:
            return value
    where = f"{event_type}.{name}"
    if kind == "counts":
        limit = MAX_MAPPING_IDENTIFIER if fields.get("mappingIdentifier") is True else None
        return _counts(where, value, limit or MAX_MAP_VALUE)
    return _NORMALISERS[kind](where, value, field)


def _check_personalization(values: Mapping[str, Any]) -> None:
    """The one rule that joins two fields: a cause of non-exposition goes with the reference."""
    if "unexpositionCause" in values and values.get("variationId") != 0:
        raise ValueError(
            "PERSONALIZATION.unexpositionCause is only valid when variationId is 0 (reference)"
        )


def _check_size(event_type: str, values: Mapping[str, Any]) -> None:
    """Refuse an event that no request could carry, as maps within the API's limits can be."""
    maps = (values.get("metadata") or {}, values.get("valuesCountMap") or {})
    chars = sum(len(str(k)) + len(str(v)) for m in maps for k, v in m.items())
    if chars * 6 < MAX_BODY_BYTES:  # JSON escapes at most 6 bytes per character
        return
    # The fields, and room for what every event adds (visitor code, nonce, event type).
    size = len(_to_json(values).encode("utf-8")) + _ENVELOPE_BYTES
    if size > MAX_BODY_BYTES:
        raise ValueError(
            f"this {event_type} event is {size:,} bytes as JSON, over the Data API's "
            f"{MAX_BODY_BYTES:,}-byte body limit; send fewer or shorter values"
        )


#: ``{"visitorCode":"<100>","nonce":"<16>","eventType":"<16>",}`` at the most.
_ENVELOPE_BYTES = 200


def _type_error(where: str, expected: str, value: Any) -> TypeError:
    return TypeError(f"{where} must be {expected}, not {type(value).__name__}")


def _string(where: str, value: Any, field: Field) -> str:
    if not isinstance(value, str):
        raise _type_error(where, "a str", value)
    return clip(value, field.limit)


def _integer(where: str, value: Any, field: Field) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise _type_error(where, "an int", value)
    low, high = _INT_RANGES[field.kind]
    if not low <= value <= high:
        raise ValueError(f"{where} must be between {low} and {high}, not {value}")
    return int(value)


def _number(where: str, value: Any, field: Field) -> float:
    if not isinstance(value, (int, float, Decimal)) or isinstance(value, bool):
        raise _type_error(where, "a number", value)
    try:
        number = float(value)
    except (OverflowError, ValueError):
        number = math.nan
    if not math.isfinite(number):
        raise ValueError(f"{where} must be a finite number, not {value}")
    return number


def _boolean(where: str, value: Any, field: Field) -> bool:
    if not isinstance(value, bool):
        raise _type_error(where, "True or False", value)
    return value


def _choice(where: str, value: Any, field: Field) -> str:
    if value not in field.choices or not isinstance(value, str):
        raise ValueError(f"{where} must be one of {', '.join(field.choices)}, not {value!r}")
    return value


def _indices(where: str, value: Any, field: Field) -> list[int]:
    if not isinstance(value, (list, tuple)):
        raise _type_error(where, "a list of ints", value)
    return [_integer(where, index, _INT32) for index in value]


def _metadata(where: str, value: Any, field: Field) -> dict[int, list[str]]:
    """``{metadata id: [values]}``, capped at 256 ids of 256 values of 2048 characters."""
    if not isinstance(value, Mapping):
        raise _type_error(where, "a dict of {int: [str, ...]}", value)
    result: dict[int, list[str]] = {}
    for key, values in list(value.items())[:MAX_MAP_ENTRIES]:
        key = _integer(f"{where} key", key, _INT32)
        if isinstance(values, str) or not isinstance(values, (list, tuple)):
            raise _type_error(f"{where}[{key}]", "a list of str", values)
        result[key] = [
            _string(f"{where}[{key}] value", item, Field("str", limit=MAX_MAP_VALUE))
            for item in values[:MAX_MAP_ENTRIES]
        ]
    return result


def _counts(where: str, value: Any, key_limit: int) -> dict[str, int]:
    """``{value: count}``, capped at 256 values; keys clipped (2048, or 100 for an identifier)."""
    if not isinstance(value, Mapping):
        raise _type_error(where, "a dict of {str: int}", value)
    key_field = Field("str", limit=key_limit)
    result: dict[str, int] = {}
    for key, count in value.items():
        key = _string(f"{where} key", key, key_field)
        count = _integer(f"{where}[{key!r}]", count, _INT32)
        if key not in result and len(result) == MAX_MAP_ENTRIES:
            continue
        result[key] = _integer(f"{where}[{key!r}]", result.get(key, 0) + count, _INT32)
    return result


_NORMALISERS: dict[str, Callable[[str, Any, Field], Any]] = {
    "str": _string,
    "int32": _integer,
    "int64": _integer,
    "float": _number,
    "bool": _boolean,
    "enum": _choice,
    "indices": _indices,
    "metadata": _metadata,
}
