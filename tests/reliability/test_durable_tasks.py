"""``TasksBackend`` on ``django-tasks-db``'s DatabaseBackend, on the real PostgreSQL, with its
``db_worker``, behind a real gunicorn site: conversions reach the strict local Data API, and a
Data API outage is waited out (batches enqueued again with ``run_after``), nothing lost.

Each test has a database of its own, made and migrated here and dropped afterwards.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import requests

from django_kameleoon.testing import DataApiServer
from tests.support import (
    CHROME,
    Process,
    gunicorn,
    python_module,
    require_service,
    run_python,
    serve,
    site_environment,
    spawn,
)

pytestmark = pytest.mark.slow


@contextlib.contextmanager
def database() -> Iterator[str]:
    """A fresh PostgreSQL database, dropped at the end."""
    host, port = require_service("postgresql")
    name = f"kameleoon_tasks_{uuid.uuid4().hex[:10]}"
    admin = f"host={host} port={port} user=postgres dbname=postgres"
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    try:
        yield name
    finally:
        with psycopg.connect(admin, autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextlib.contextmanager
def tasks_site(tmp_path: Path, data_api: DataApiServer) -> Iterator[tuple[Process, Process]]:
    """A gunicorn site with the TasksBackend on its database, and a ``db_worker``."""
    settings = {
        "DATA_API_URL": data_api.url,
        "BACKEND": "django_kameleoon.backends.tasks.TasksBackend",
        "FLUSH_INTERVAL": 0.2,
        "RETRY_BACKOFF": 0.1,
        "RETRY_BACKOFF_MAX": 0.5,
    }
    with database() as name:
        env = {**site_environment(settings), "KAMELEOON_TEST_POSTGRES": name}
        migrated = run_python("-m", "django", "migrate", "--no-input", env=env, timeout=120)
        assert migrated.returncode == 0, migrated.stdout + migrated.stderr
        argv = python_module("django", "db_worker", "--interval=0.05", "--no-startup-delay")
        with (
            serve(
                gunicorn("--workers=2", "--threads=4"), settings, tmp_path / "site.log", env=env
            ) as site,
            spawn(argv, tmp_path / "worker.log", env=env) as worker,
        ):
            yield site, worker
            worker.stop(timeout=30)


def convert(site: Process, first: int, count: int) -> None:
    response = requests.post(
        f"{site.url}/convert/{first}/{count}/", headers={"User-Agent": CHROME}, timeout=30
    )
    assert response.status_code == 200, response.text


def assert_all_arrived(data_api: DataApiServer, count: int, worker: Process) -> None:
    try:
        events = data_api.wait_for_events(count, timeout=120)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{worker.output()[-3000:]}") from None
    assert {event["visitorCode"] for event in events} == {f"conv-{n}" for n in range(count)}
    assert data_api.duplicates == [] and data_api.violations == []


def test_database_backend_delivers(data_api: DataApiServer, tmp_path: Path) -> None:
    with tasks_site(tmp_path, data_api) as (site, worker):
        for first in range(0, 5000, 100):
            convert(site, first, 100)
        assert_all_arrived(data_api, 5000, worker)
    assert "dropped" not in site.output()


def test_database_backend_waits_out_an_outage(data_api: DataApiServer, tmp_path: Path) -> None:
    data_api.stop()
    with tasks_site(tmp_path, data_api) as (site, worker):
        for first in range(0, 2000, 100):
            convert(site, first, 100)
        # Each run fails once and enqueues its batch again, deferred: several runs of each.
        worker.wait_for(
            lambda: worker.output().count("Kameleoon: connection failed") >= 6,
            "the batches tried again, run after run",
            60,
        )
        data_api.start()
        assert_all_arrived(data_api, 2000, worker)
    assert "dropped" not in site.output() + worker.output()
