"""Memory per process stays bounded whatever User-Agent headers arrive.

Every cache keyed on a User-Agent is keyed on the clipped string (``MAX_UA_LENGTH``) and holds
at most ``CACHE_SIZE`` entries: 30,000 distinct 8 kB headers must not hold 30,000 (or 10,000)
copies of 8 kB. The bound below is what ``CACHE_SIZE`` entries of a clipped key and its parsed
result can take, with room to spare: 10,000 x (512-character key + parsed fields) < 16 MB.
"""

from __future__ import annotations

import gc
import tracemalloc
from typing import Any

import pytest
from django.http import HttpRequest
from django.test import RequestFactory

from django_kameleoon import useragent
from django_kameleoon.middleware import locale_language_tag
from django_kameleoon.pageview import static_fields
from django_kameleoon.visitor import request_header, user_agent

pytestmark = pytest.mark.slow

HEADERS = 30_000
HEADER_BYTES = 8_192
BOUND = 16 * 1024 * 1024


def static_data(request: HttpRequest) -> dict[str, Any]:
    """What a page view of ``request`` sends as STATICDATA: the middleware's parse, made into
    the fields the sender shares."""
    language = locale_language_tag(request_header(request, "HTTP_ACCEPT_LANGUAGE"))
    return static_fields(user_agent(request), "kameleoon", language)


def test_30k_distinct_8kb_user_agents_hold_a_bounded_amount_of_memory() -> None:
    factory = RequestFactory()
    padding = "x" * HEADER_BYTES
    static_data(factory.get("/", HTTP_USER_AGENT="warm-up"))
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for i in range(HEADERS):
            # Distinct at the end too: a cache keyed on the whole header sees 30,000 keys.
            ua = f"Mozilla/5.0 (X11; Linux x86_64; {i}) Firefox/{i % 200}.0 {padding} {i}"
            request = factory.get("/", HTTP_USER_AGENT=ua)
            static_data(request)
            del request
        gc.collect()
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert held < BOUND, f"{held / 2**20:.1f} MiB held after {HEADERS:,} distinct headers"
    assert useragent.CACHE_SIZE * (useragent.MAX_UA_LENGTH + 1024) < BOUND
