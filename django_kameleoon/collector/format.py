"""One event, one line: what the collector prints for each event and each violation.

Visitors' text (titles, URLs, custom data) is escaped and cut here, so that every event stays
one readable line on a terminal.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from django_kameleoon.useragent import BROWSER_INDEX, OS_INDEX

#: Longest text shown for one value: an event line must stay one readable line.
MAX_VALUE_WIDTH = 120

#: One event as received: the API's own field names, JSON types.
WireEvent = Mapping[str, Any]

#: Kameleoon's browser names by ``browserIndex`` (what the middleware sends by default).
BROWSER_NAMES = {index: name for name, index in BROWSER_INDEX.items()}


def clean(value: object, width: int = MAX_VALUE_WIDTH) -> str:
    """Text safe for one terminal line: control characters escaped, long values cut.

    Titles, URLs and custom data come from visitors, so a new line or an escape sequence in
    them must not break the one-line-per-event layout or reach the terminal raw.
    """
    text = str(value)
    if not text.isprintable():
        text = "".join(c if c.isprintable() else ascii(c)[1:-1] for c in text)
    return text if len(text) <= width else text[: width - 1] + "…"


def number(value: object) -> str:
    """A number as a person writes it: ``5.5``, ``120`` (not ``120.0``), ``19.99``."""
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return str(int(value))
    return clean(value)


def compact_json(value: object) -> str:
    """A JSON-typed field (metadata, valuesCountMap, index arrays) in its shortest form."""
    return clean(json.dumps(value, ensure_ascii=False, separators=(",", ":")))


def joined(parts: Iterable[str | None], separator: str = "  ") -> str:
    """The parts that are there, in order: an event's optional fields leave no gaps."""
    return separator.join(part for part in parts if part)


def _field(event: WireEvent, name: str, label: str | None = None) -> str | None:
    """``label=value`` when the event has the field, else None (left out of the line)."""
    if name not in event:
        return None
    value = event[name]
    shown = compact_json(value) if isinstance(value, (dict, list)) else number(value)
    return f"{label or name}={shown}"


def describe_static(event: WireEvent) -> str:
    """``Chrome 120 / Windows / DESKTOP / fr``, then any screen size or visit count."""
    browser = joined([browser_name(event), browser_version(event)], " ")
    device = [
        browser,
        *(clean(event[k]) for k in ("os", "deviceType", "localeLanguageTag") if k in event),
    ]
    extras = [
        f"screen {number(event['screenWidth'])}x{number(event['screenHeight'])}"
        if "screenWidth" in event and "screenHeight" in event
        else None,
        _field(event, "visitNumber", "visit"),
        _field(event, "timeSincePreviousVisit", "since_ms"),
        # An index is shown when the line does not already name it.
        _field(event, "browserIndex") if "browser" in event else None,
        _field(event, "osIndex")
        if OS_INDEX.get(str(event.get("os"))) != event.get("osIndex")
        else None,
    ]
    return joined([" / ".join(part for part in device if part) or "(no details)", *extras])


def browser_name(event: WireEvent) -> str | None:
    """``browser`` as sent, else Kameleoon's name for ``browserIndex`` (``CHROME``), if any."""
    if "browser" in event:
        return clean(event["browser"])
    index = event.get("browserIndex")
    return BROWSER_NAMES.get(index) if isinstance(index, int) else None


def browser_version(event: WireEvent) -> str | None:
    """``browserVersion`` as the line shows it (``120`` rather than ``120.0``), if sent."""
    return number(event["browserVersion"]) if "browserVersion" in event else None


def describe_page(event: WireEvent) -> str:
    """``https://… "Title"``, then the canonical URL, referrer and key pages when present."""
    title = f'"{clean(event["title"])}"' if "title" in event else None
    canonical = event.get("canonicalHref")
    return joined(
        [
            clean(event.get("href", "(no href)")),
            title,
            f"canonical={clean(canonical)}"
            if canonical and canonical != event.get("href")
            else None,
            f"from {clean(event['referrerHref'])}" if "referrerHref" in event else None,
            _field(event, "keyPageIndices", "key_pages"),
            _field(event, "referrerIndices", "referrers"),
        ]
    )


def describe_conversion(event: WireEvent) -> str:
    """``goal=7 revenue=5.5``, marked NEGATIVE when it takes a conversion back."""
    return joined(
        [
            _field(event, "goalId", "goal"),
            _field(event, "revenue"),
            "NEGATIVE" if event.get("negative") is True else None,
            _field(event, "metadata"),
        ],
        " ",
    )


def describe_weather(event: WireEvent) -> str:
    """The units of ``docs/data-api-visit-events.md``: Kelvin, percent, hPa, m/s, UNIX ms."""
    parts = [
        f"{number(event['temperature'])} K" if "temperature" in event else None,
        f"humidity {number(event['humidity'])}%" if "humidity" in event else None,
        f"{number(event['pressure'])} hPa" if "pressure" in event else None,
        f"wind {number(event['windSpeed'])} m/s" if "windSpeed" in event else None,
        f"clouds {number(event['cloudiness'])}%" if "cloudiness" in event else None,
        _field(event, "sunriseTime", "sunrise"),
        _field(event, "sunsetTime", "sunset"),
        f'"{clean(event["weatherCode"])}"' if "weatherCode" in event else None,
    ]
    return joined(parts, " ")


def describe_geolocation(event: WireEvent) -> str:
    """``Paris, Île-de-France, 75001, France (48.85, 2.35)``."""
    place = ", ".join(
        clean(event[k]) for k in ("city", "region", "postalCode", "country") if k in event
    )
    if "latitude" in event or "longitude" in event:
        where = f"({number(event.get('latitude', '?'))}, {number(event.get('longitude', '?'))})"
        place = joined([place, where], " ")
    return place or "(no details)"


def _fields(*names: tuple[str, str]) -> Callable[[WireEvent], str]:
    """A describer that shows the given fields as ``label=value``, in order."""

    def describe(event: WireEvent) -> str:
        return joined([_field(event, name, label) for name, label in names], " ")

    return describe


_COMMON = ("visitorCode", "nonce", "eventType")


def describe_other(event: WireEvent) -> str:
    """Every field but the common ones: for an event type this module does not know."""
    return joined([_field(event, name) for name in event if name not in _COMMON], " ")


DESCRIBERS: dict[str, Callable[[WireEvent], str]] = {
    "STATICDATA": describe_static,
    "PAGE": describe_page,
    "CONVERSION": describe_conversion,
    "TARGETINGSEGMENT": _fields(("id", "segment")),
    "EXPERIMENT": _fields(("id", "experiment"), ("variationId", "variation")),
    "PERSONALIZATION": _fields(
        ("id", "personalization"), ("variationId", "variation"), ("unexpositionCause", "cause")
    ),
    "WEATHER": describe_weather,
    "CUSTOMDATA": _fields(
        ("index", "index"),
        ("valuesCountMap", "values"),
        ("mappingIdentifier", "mapping_identifier"),
        ("overwrite", "overwrite"),
    ),
    "PRODUCT": _fields(("ean", "ean")),
    "GEOLOCATION": describe_geolocation,
}


def format_event(event: WireEvent) -> str:
    """One accepted event as one line: type, visitor code, then the fields that matter."""
    event_type = clean(event.get("eventType", "?"), 20)
    describe = DESCRIBERS.get(str(event.get("eventType")), describe_other)
    visitor = clean(event.get("visitorCode", "?"), 100)
    return f"{event_type:<10} v={visitor}  {describe(event)}".rstrip()


def format_duplicate(event: WireEvent) -> str:
    """An event whose nonce arrived before: a retry after a lost answer, which the API keeps
    once. Shown, so that a sender that repeats itself is seen, and marked, so it stands out."""
    return f"DUPLICATE  {format_event(event)}  [nonce already received]"


def format_violation(text: str) -> str:
    """A broken rule, loud enough to notice among the event lines (it goes to stderr)."""
    return f"!! VIOLATION: {clean(text, 1000)}"
