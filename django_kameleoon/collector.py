"""A local collector: the strict Data API stand-in, run for a person to watch.

Why it exists: the real Data API answers 202 before it reads a body, so a site that sends a
field wrong is never told. Pointing ``DATA_API_URL`` at this collector instead shows, one line
per event, exactly what the site sends, and every broken rule of Kameleoon's spec loudly::

    $ python -m django_kameleoon.collector --port 8765 --jsonl events.jsonl
    PAGE       v=x7k2m9q4w8e5r1t3  http://127.0.0.1:8000/products/teapot/  "Teapot"
    STATICDATA v=x7k2m9q4w8e5r1t3  Chrome 120 / Windows / DESKTOP / fr-FR
    CONVERSION v=x7k2m9q4w8e5r1t3  goal=101 revenue=59.8

It needs no Django (it is ``django_kameleoon.testing.DataApiServer`` plus output), so it starts
at once and can run beside any site. The formatting functions are small and public because the
example project's demo reuses them for its summary table.
"""

from __future__ import annotations

import argparse
import json
import math
import signal
import sys
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import FrameType, TracebackType
from typing import IO, Any, Protocol

from django_kameleoon.testing import DataApiServer

__all__ = [
    "DEFAULT_HOST",
    "DEFAULT_PORT",
    "Collector",
    "VisitorSummary",
    "add_arguments",
    "count_by_type",
    "format_event",
    "format_table",
    "format_violation",
    "main",
    "run",
    "summarize_visitors",
    "visitor_table",
]

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765

#: Longest text shown for one value: an event line must stay one readable line.
MAX_VALUE_WIDTH = 120

Event = Mapping[str, Any]


class Stream(Protocol):
    """Where lines go: a file, ``sys.stdout``, or a management command's ``self.stdout``."""

    def write(self, text: str, /) -> object: ...

    def flush(self) -> None: ...


# --------------------------------------------------------------------------------------------
# One event, one line
# --------------------------------------------------------------------------------------------


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


def _joined(parts: Iterable[str | None], separator: str = "  ") -> str:
    return separator.join(part for part in parts if part)


def _field(event: Event, name: str, label: str | None = None) -> str | None:
    """``label=value`` when the event has the field, else None (left out of the line)."""
    if name not in event:
        return None
    value = event[name]
    shown = compact_json(value) if isinstance(value, (dict, list)) else number(value)
    return f"{label or name}={shown}"


def describe_static(event: Event) -> str:
    """``Chrome 120 / Windows / DESKTOP / fr``, then any screen size or visit count."""
    browser = _joined(
        [clean(event["browser"]) if "browser" in event else None, _version(event)], " "
    )
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
        _field(event, "browserIndex"),
        _field(event, "osIndex"),
    ]
    return _joined([" / ".join(part for part in device if part) or "(no details)", *extras])


def _version(event: Event) -> str | None:
    return number(event["browserVersion"]) if "browserVersion" in event else None


def describe_page(event: Event) -> str:
    """``https://… "Title"``, then the canonical URL, referrer and key pages when present."""
    title = f'"{clean(event["title"])}"' if "title" in event else None
    canonical = event.get("canonicalHref")
    return _joined(
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


def describe_conversion(event: Event) -> str:
    """``goal=7 revenue=5.5``, marked NEGATIVE when it takes a conversion back."""
    return _joined(
        [
            _field(event, "goalId", "goal"),
            _field(event, "revenue"),
            "NEGATIVE" if event.get("negative") is True else None,
            _field(event, "metadata"),
        ],
        " ",
    )


def describe_weather(event: Event) -> str:
    """The seed's units: Kelvin, percent, hPa, m/s, UNIX milliseconds."""
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
    return _joined(parts, " ")


def describe_geolocation(event: Event) -> str:
    """``Paris, Île-de-France, 75001, France (48.85, 2.35)``."""
    place = ", ".join(
        clean(event[k]) for k in ("city", "region", "postalCode", "country") if k in event
    )
    if "latitude" in event or "longitude" in event:
        where = f"({number(event.get('latitude', '?'))}, {number(event.get('longitude', '?'))})"
        place = _joined([place, where], " ")
    return place or "(no details)"


def _fields(*names: tuple[str, str]) -> Callable[[Event], str]:
    """A describer that shows the given fields as ``label=value``, in order."""

    def describe(event: Event) -> str:
        return _joined([_field(event, name, label) for name, label in names], " ")

    return describe


_COMMON = ("visitorCode", "nonce", "eventType")


def describe_other(event: Event) -> str:
    """Every field but the common ones: for an event type this module does not know."""
    return _joined([_field(event, name) for name in event if name not in _COMMON], " ")


DESCRIBERS: dict[str, Callable[[Event], str]] = {
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


def format_event(event: Event) -> str:
    """One accepted event as one line: type, visitor code, then the fields that matter."""
    event_type = clean(event.get("eventType", "?"), 20)
    describe = DESCRIBERS.get(str(event.get("eventType")), describe_other)
    visitor = clean(event.get("visitorCode", "?"), 100)
    return f"{event_type:<10} v={visitor}  {describe(event)}".rstrip()


def format_violation(text: str) -> str:
    """A broken rule, loud enough to notice among the event lines (it goes to stderr)."""
    return f"!! VIOLATION: {clean(text, 1000)}"


# --------------------------------------------------------------------------------------------
# Many events: summaries and tables
# --------------------------------------------------------------------------------------------


@dataclass
class VisitorSummary:
    """What one visitor's events add up to, for a table a person can read at a glance."""

    visitor_code: str
    device: str | None = None
    browser: str | None = None
    os: str | None = None
    locale: str | None = None
    pages: int = 0
    conversions: int = 0
    revenue: float = 0.0
    events: int = 0

    def add(self, event: Event) -> None:
        """Count one more event; a negative conversion takes one (and its revenue) back."""
        self.events += 1
        kind = event.get("eventType")
        if kind == "STATICDATA":
            self.device = event.get("deviceType", self.device)
            browser = _joined([event.get("browser"), _version(event)], " ")
            self.browser = browser or self.browser
            self.os = event.get("os", self.os)
            self.locale = event.get("localeLanguageTag", self.locale)
        elif kind == "PAGE":
            self.pages += 1
        elif kind == "CONVERSION":
            sign = -1 if event.get("negative") is True else 1
            self.conversions += sign
            revenue = event.get("revenue")
            if isinstance(revenue, (int, float)) and not isinstance(revenue, bool):
                self.revenue += sign * revenue


def summarize_visitors(events: Iterable[Event]) -> dict[str, VisitorSummary]:
    """Events grouped by visitor code, in the order visitors first appeared."""
    summaries: dict[str, VisitorSummary] = {}
    for event in events:
        code = str(event.get("visitorCode", "?"))
        summaries.setdefault(code, VisitorSummary(code)).add(event)
    return summaries


def count_by_type(events: Iterable[Event]) -> Counter[str]:
    """How many events of each type arrived."""
    return Counter(str(event.get("eventType", "?")) for event in events)


def format_table(headers: Sequence[str], rows: Iterable[Sequence[object]]) -> list[str]:
    """Rows as aligned plain-text lines under a header and a rule; numeric columns to the right."""
    cells = [[clean("" if value is None else value, 60) for value in row] for row in rows]
    columns = range(len(headers))
    widths = [max([len(headers[i]), *(len(row[i]) for row in cells)]) for i in columns]
    numeric = [bool(cells) and all(_is_number(row[i]) for row in cells) for i in columns]

    def line(values: Sequence[str]) -> str:
        padded = (
            v.rjust(w) if right else v.ljust(w)
            for v, w, right in zip(values, widths, numeric, strict=True)
        )
        return "  ".join(padded).rstrip()

    return [line(headers), line(["-" * w for w in widths]), *(line(row) for row in cells)]


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def visitor_table(
    summaries: Iterable[VisitorSummary], labels: Mapping[str, str] | None = None
) -> list[str]:
    """The per-visitor table; ``labels`` names visitors (the demo's "iPhone Safari", ...)."""
    labels = labels or {}
    headers = ["visitor", "device", "browser", "os", "locale", "pages", "conv.", "revenue"]
    if labels:
        headers.insert(1, "who")
    rows = []
    for s in summaries:
        row: list[object] = [s.visitor_code, s.device, s.browser, s.os, s.locale]
        row += [s.pages, s.conversions, f"{s.revenue:.2f}"]
        if labels:
            row.insert(1, labels.get(s.visitor_code, ""))
        rows.append(row)
    return format_table(headers, rows)


# --------------------------------------------------------------------------------------------
# The collector: a server that prints
# --------------------------------------------------------------------------------------------


class Collector:
    """A ``DataApiServer`` that prints each event and violation, and can keep a JSONL file.

    Lines are written under one lock: events arrive on the server's handler threads, and two
    requests at once must not interleave half-lines.
    """

    def __init__(
        self,
        *,
        host: str = DEFAULT_HOST,
        port: int = DEFAULT_PORT,
        site_code: str | None = None,
        jsonl: Path | None = None,
        out: Stream | None = None,
        err: Stream | None = None,
    ) -> None:
        self.out: Stream = out or sys.stdout
        self.err: Stream = err or sys.stderr
        self.jsonl_path = jsonl
        self._jsonl: IO[str] | None = None
        self._lock = threading.Lock()
        self.server = DataApiServer(
            host=host,
            port=port,
            site_code=site_code,
            on_event=self._on_event,
            on_violation=self._on_violation,
        )

    @property
    def url(self) -> str:
        """What ``KAMELEOON["DATA_API_URL"]`` should be set to."""
        return self.server.url

    def start(self) -> Collector:
        """Open the JSONL file (appending), then bind and serve. OSError if the port is taken."""
        if self.jsonl_path is not None:
            self._jsonl = self.jsonl_path.open("a", encoding="utf-8")
        try:
            self.server.start()
        except BaseException:
            self._close_jsonl()
            raise
        return self

    def stop(self) -> None:
        self.server.stop()
        self._close_jsonl()

    def __enter__(self) -> Collector:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def say(self, text: str, *, error: bool = False) -> None:
        """Write one line now (flushed: the collector is often read through a pipe)."""
        stream = self.err if error else self.out
        with self._lock:
            stream.write(text + "\n")
            stream.flush()

    def _on_event(self, event: dict[str, Any]) -> None:
        self.say(format_event(event))
        if self._jsonl is not None:
            with self._lock:
                self._jsonl.write(json.dumps(event, ensure_ascii=False) + "\n")
                self._jsonl.flush()

    def _on_violation(self, text: str) -> None:
        self.say(format_violation(text), error=True)

    def _close_jsonl(self) -> None:
        with self._lock:
            if self._jsonl is not None:
                self._jsonl.close()
                self._jsonl = None

    def summary(self) -> list[str]:
        """What was received, for the end of a session: counts by type, visitors, violations."""
        events = self.server.events
        counts = count_by_type(events)
        by_type = ", ".join(f"{kind} {n}" for kind, n in sorted(counts.items()))
        lines = [f"received {len(events)} event(s)" + (f": {by_type}" if by_type else "")]
        if events:
            lines += visitor_table(summarize_visitors(events).values())
        violations = self.server.violations
        if violations:
            lines.append(f"!! {len(violations)} violation(s) of the Data API's rules (see above)")
        else:
            lines.append("no violations")
        return lines


# --------------------------------------------------------------------------------------------
# The command line
# --------------------------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options, shared by ``python -m django_kameleoon.collector`` and the manage command."""
    parser.add_argument("--host", default=DEFAULT_HOST, help="address to listen on")
    parser.add_argument(
        "--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT}; 0: any)"
    )
    parser.add_argument(
        "--site-code",
        default=None,
        help="accept only this siteCode (anything else is a violation); default: any",
    )
    parser.add_argument(
        "--jsonl", type=Path, default=None, help="append every event to this JSON Lines file"
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m django_kameleoon.collector",
        description="Run a strict local stand-in of Kameleoon's Data API and print what arrives.",
    )
    add_arguments(parser)
    return parser


@contextmanager
def stop_on_signals(stop: threading.Event) -> Iterator[None]:
    """Turn Ctrl-C and SIGTERM into ``stop.set()``, so shutdown is one clean path.

    Handlers can only be installed from the main thread; elsewhere (a test calling ``run``
    from a thread) the caller stops the collector through ``stop`` alone.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def banner(collector: Collector, site_code: str | None, jsonl: Path | None) -> list[str]:
    """The first lines: where the collector listens, and the setting that points a site at it."""
    lines = [
        f"Kameleoon Data API stand-in listening on {collector.url}",
        f'  point your site at it:  KAMELEOON["DATA_API_URL"] = "{collector.url}"',
        f"  siteCode: {site_code!r} only" if site_code else "  siteCode: any",
    ]
    if jsonl is not None:
        lines.append(f"  appending events to {jsonl}")
    lines.append("  Ctrl-C to stop")
    return lines


def run(
    options: argparse.Namespace,
    *,
    out: Stream | None = None,
    err: Stream | None = None,
    stop: threading.Event | None = None,
) -> int:
    """Serve until Ctrl-C, SIGTERM or ``stop``; 0 when clean, 1 after violations, 2 if unbound."""
    stop = stop or threading.Event()
    collector = Collector(
        host=options.host,
        port=options.port,
        site_code=options.site_code,
        jsonl=options.jsonl,
        out=out,
        err=err,
    )
    try:
        collector.start()
    except OSError as exc:
        collector.say(f"cannot listen on {options.host}:{options.port}: {exc}", error=True)
        return 2
    try:
        with stop_on_signals(stop):
            for line in banner(collector, options.site_code, options.jsonl):
                collector.say(line)
            stop.wait()
    except KeyboardInterrupt:
        pass  # a Ctrl-C that came before the handler was installed: stop all the same
    finally:
        collector.stop()
    for line in collector.summary():
        collector.say(line)
    return 1 if collector.server.violations else 0


def main(argv: Sequence[str] | None = None) -> int:
    return run(build_parser().parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
