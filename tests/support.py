"""Helpers shared by several test modules; import them from here, never from a test module.

Each section belongs to the tests it names.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import requests

from django_kameleoon.testing import DataApiServer

# --------------------------------------------------------------------------------------------
# The Data API stand-in (tests/test_testing_*.py): posting to it, and valid events to post
# --------------------------------------------------------------------------------------------

SITE = "site-under-test"
UA = "django-kameleoon-tests/1.0"
VISITOR = "visitor-0001"


def serve_stand_in() -> Iterator[DataApiServer]:
    """A ``DataApiServer`` for ``SITE``, serving for one test: each module's ``api`` fixture."""
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
