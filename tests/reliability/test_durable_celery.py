"""``CeleryBackend`` on real brokers (Redis, RabbitMQ), real prefork workers and a real
gunicorn site, delivering to the strict local Data API: nothing is lost when the API is down,
when a worker or a web process is killed, or when the broker goes away.

Each test has a queue of its own (and Redis a database of its own), so tests cannot take each
other's messages; times are scaled down (an outage of seconds stands for minutes).
"""

from __future__ import annotations

import contextlib
import os
import signal
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from django_kameleoon.testing import DataApiServer
from tests.support import (
    CHROME,
    Process,
    celery_worker,
    connections_to,
    gunicorn,
    require_service,
    serve,
    spawn,
    wait_until,
)

pytestmark = pytest.mark.slow

BROKERS = ["redis", "rabbitmq"]


def broker_url(kind: str) -> str:
    host, port = require_service(kind)
    if kind == "redis":
        return f"redis://{host}:{port}/11"
    return f"amqp://guest:guest@{host}:{port}//"


@contextlib.contextmanager
def durable_site(
    tmp_path: Path,
    data_api: DataApiServer,
    broker: str,
    *,
    kameleoon: dict[str, Any] | None = None,
    workers: int = 2,
    visibility: float = 3600,
) -> Iterator[tuple[Process, dict[str, str]]]:
    """A gunicorn site with the CeleryBackend on ``broker``; yields it and the environment
    that a Celery worker of the same site needs."""
    env = {
        "KAMELEOON_TEST_BROKER": broker_url(broker),
        "KAMELEOON_TEST_QUEUE": f"kameleoon-{uuid.uuid4().hex[:12]}",
        "KAMELEOON_TEST_VISIBILITY": str(visibility),
    }
    settings = {
        "DATA_API_URL": data_api.url,
        "BACKEND": "django_kameleoon.backends.celery.CeleryBackend",
        "FLUSH_INTERVAL": 0.2,
        "RETRY_BACKOFF": 0.1,
        "RETRY_BACKOFF_MAX": 1.0,
        **(kameleoon or {}),
    }
    argv = gunicorn(f"--workers={workers}", "--threads=4")
    with serve(argv, settings, tmp_path / "site.log", env=env) as site:
        from tests.support import site_environment

        yield site, {**site_environment(settings), **env}


def convert(site: Process, first: int, count: int) -> None:
    response = requests.post(
        f"{site.url}/convert/{first}/{count}/", headers={"User-Agent": CHROME}, timeout=30
    )
    assert response.status_code == 200, response.text


def assert_all_arrived(data_api: DataApiServer, count: int, timeout: float = 60) -> None:
    events = data_api.wait_for_events(count, timeout=timeout)
    codes = {event["visitorCode"] for event in events}
    missing = {f"conv-{n}" for n in range(count)} - codes
    assert not missing, f"{len(missing)} conversions lost, e.g. {sorted(missing)[:5]}"
    assert len(events) == count
    assert data_api.violations == []


@pytest.mark.parametrize("broker", BROKERS)
def test_ten_thousand_conversions_reach_the_api(
    broker: str, data_api: DataApiServer, tmp_path: Path
) -> None:
    with durable_site(tmp_path, data_api, broker) as (site, env):
        with spawn(celery_worker("--concurrency=2"), tmp_path / "worker.log", env=env) as worker:
            for first in range(0, 10_000, 100):
                convert(site, first, 100)
            try:
                assert_all_arrived(data_api, 10_000)
            except AssertionError as exc:
                raise AssertionError(f"{exc}\n{worker.output()[-3000:]}") from None
            assert data_api.duplicates == []
            worker.stop(timeout=30)
    assert "dropped" not in site.output(), site.output()
