"""The rules of ``POST /visit/events``, as data, transcribed from Kameleoon's page for it.

That page, kept in the repository as ``docs/data-api-visit-events.md``, lists every event type,
field, type and limit; this module holds them as tables, written down separately from
``events.py`` (see the package doc for why). ``validation.py`` applies them to one event,
``body.py`` to a whole request.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

# One event as it travels in a request body: field names to JSON values. Named apart from
# ``django_kameleoon.events.Event``, the sender's class, which this package never uses.
WireEvent = dict[str, Any]
BodyFormat = Literal["json", "query"]

EVENTS_PATH = "/visit/events"
MAX_BODY_BYTES = 3_000_000  # "The body size limit is 3 MB."

# The defaults of Python's HTTP libraries: Kameleoon's page says a server-side sender must
# overwrite the library's User-Agent, or Kameleoon may take it for a bot.
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
    """One body parameter: its type on Kameleoon's page, whether it is required, and its limits.

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
# which examine_event() handles, so it is not marked required here.
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

INT_RANGES: dict[str, tuple[int, int]] = {
    "int32": (-(2**31), 2**31 - 1),
    "int64": (-(2**63), 2**63 - 1),
}
