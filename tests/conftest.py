"""Fixtures shared by the suite: a real local Data API and settings pointing at it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

import django_kameleoon
from django_kameleoon.backends import reset_backend
from django_kameleoon.testing import DataApiServer

SITE_CODE = "testsite01"

Configure = Callable[..., None]


def delivered(data_api: DataApiServer) -> list[dict[str, Any]]:
    """Everything queued so far, once the backend says it is delivered."""
    assert django_kameleoon.flush(5)
    return data_api.events


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


@pytest.fixture(autouse=True)
def _empty_outbox() -> Iterator[None]:
    django_kameleoon.outbox.clear()
    yield
    django_kameleoon.outbox.clear()
