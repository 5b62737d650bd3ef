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

The package: ``format`` (one event, one line), ``tables`` (summaries of many events),
``server`` (``Collector``, the server that prints), ``cli`` (the options and the serving loop
that ``python -m django_kameleoon.collector`` and ``manage.py kameleoon_collector`` share).
"""

from __future__ import annotations

from django_kameleoon.collector.cli import add_arguments, build_parser, main, run
from django_kameleoon.collector.format import format_duplicate, format_event, format_violation
from django_kameleoon.collector.server import DEFAULT_HOST, DEFAULT_PORT, Collector
from django_kameleoon.collector.tables import (
    VisitorSummary,
    count_by_type,
    format_table,
    summarize_visitors,
    visitor_table,
)

__all__ = [
    "DEFAULT_HOST",
    "DEFAULT_PORT",
    "Collector",
    "VisitorSummary",
    "add_arguments",
    "build_parser",
    "count_by_type",
    "format_duplicate",
    "format_event",
    "format_table",
    "format_violation",
    "main",
    "run",
    "summarize_visitors",
    "visitor_table",
]
