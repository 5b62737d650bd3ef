"""Fixtures shared by the suite: a real local Data API and settings pointing at it.

Helpers and constants are in ``tests/support.py``; test modules import them from there.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from typing import Any

import pytest

# Tests stop servers with Ctrl-C (SIGINT), as a terminal does. A run started in the background
# of a script (`cmd &`, as CI runners may) begins with SIGINT ignored, and every process it
# starts would inherit that and never see Ctrl-C; a handled signal is reset at exec.
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

# Before the import below: failed asserts in the shared helpers explain themselves too.
pytest.register_assert_rewrite("tests.support")

from django.db.backends.signals import connection_created  # noqa: E402
from django.test import Client, RequestFactory  # noqa: E402

import django_kameleoon  # noqa: E402
from django_kameleoon import signals  # noqa: E402
from django_kameleoon.backends import reset_backend  # noqa: E402
from django_kameleoon.signals import events_dropped  # noqa: E402
from django_kameleoon.testing import DataApiServer  # noqa: E402
from tests.support import CHROME, SITE_CODE, Configure  # noqa: E402

# Django's test clients and request factories send no User-Agent, and a request without one is
# a program, not a visitor (issue 11). The suite's are a desktop Chrome unless a test says not.


@pytest.fixture
def client() -> Client:
    return Client(HTTP_USER_AGENT=CHROME)


@pytest.fixture
def rf() -> RequestFactory:
    return RequestFactory(HTTP_USER_AGENT=CHROME)


@pytest.fixture
def data_api() -> Iterator[DataApiServer]:
    """A strict stand-in of the Data API on 127.0.0.1; a test fails if any rule was broken.

    A test that sends invalid data on purpose calls ``reset()`` after checking them.
    """
    server = DataApiServer(site_code=SITE_CODE).start()
    try:
        yield server
    finally:
        server.stop()
    assert server.violations == [], "the Data API stand-in saw rule violations"


@pytest.fixture
def kameleoon(data_api: DataApiServer, settings: Any) -> Iterator[Configure]:
    """Point the app at ``data_api`` with the threaded backend and quick timers.

    Call the fixture's value with keyword overrides to change ``KAMELEOON`` for the test.
    """

    def configure(**overrides: Any) -> None:
        settings.KAMELEOON = {
            "SITE_CODE": SITE_CODE,
            "DATA_API_URL": data_api.url,
            "BACKEND": "threaded",
            "FLUSH_INTERVAL": 0.05,
            "RETRY_BACKOFF": 0.05,
            "TIMEOUT": 2.0,
            **overrides,
        }

    configure()
    yield configure
    reset_backend()


@pytest.fixture
def dropped() -> Iterator[list[dict[str, Any]]]:
    """What the ``events_dropped`` signal reported during the test."""
    seen: list[dict[str, Any]] = []

    def receiver(sender: Any, events: list[Any], reason: str, count: int, **kwargs: Any) -> None:
        seen.append({"count": count, "reason": reason})

    events_dropped.connect(receiver)
    yield seen
    events_dropped.disconnect(receiver)


@pytest.fixture
def conversions() -> Iterator[list[dict[str, Any]]]:
    """What receivers of ``signals.conversion`` saw during the test."""
    seen: list[dict[str, Any]] = []

    def record(sender: Any, **kwargs: Any) -> None:
        seen.append(kwargs)

    signals.conversion.connect(record)
    yield seen
    signals.conversion.disconnect(record)


@pytest.fixture(autouse=True)
def _empty_outbox() -> Iterator[None]:
    django_kameleoon.outbox.clear()
    yield
    django_kameleoon.outbox.clear()


@pytest.fixture(autouse=True)
def _close_connections_of_other_threads() -> Iterator[None]:
    """Close the database connections that threads opened during the test.

    Django never closes a connection to an in-memory SQLite database (that would drop the
    database), so those opened in other threads (``sync_to_async``, the ASGI test client)
    were left to the garbage collector, which Python 3.13 reports as a ResourceWarning. The
    test database lives on in the main thread's connection.
    """
    opened: list[Any] = []

    def keep(sender: Any, connection: Any, **kwargs: Any) -> None:
        if threading.current_thread() is not threading.main_thread():
            opened.append(connection)

    connection_created.connect(keep, weak=False)
    yield
    connection_created.disconnect(keep)
    for wrapper in opened:
        if wrapper.connection is not None:
            wrapper.connection.close()
            wrapper.connection = None
