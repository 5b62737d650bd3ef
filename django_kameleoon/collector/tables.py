"""Many events at once: counts by type and the per-visitor table, for a session's summary."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from django_kameleoon.collector.format import (
    WireEvent,
    browser_name,
    browser_version,
    clean,
    joined,
)


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

    def add(self, event: WireEvent) -> None:
        """Count one more event; a negative conversion takes one (and its revenue) back."""
        self.events += 1
        kind = event.get("eventType")
        if kind == "STATICDATA":
            self.device = event.get("deviceType", self.device)
            browser = joined([browser_name(event), browser_version(event)], " ")
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


def summarize_visitors(events: Iterable[WireEvent]) -> dict[str, VisitorSummary]:
    """Events grouped by visitor code, in the order visitors first appeared."""
    summaries: dict[str, VisitorSummary] = {}
    for event in events:
        code = str(event.get("visitorCode", "?"))
        summaries.setdefault(code, VisitorSummary(code)).add(event)
    return summaries


def count_by_type(events: Iterable[WireEvent]) -> Counter[str]:
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
