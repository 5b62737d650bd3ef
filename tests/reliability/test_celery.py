"""A real Celery worker (prefork pool, 2 processes) delivers its conversions when it stops.

Prefork children leave through ``os._exit()``, so ``atexit`` never runs in them; the app's
receiver of Celery's ``worker_process_shutdown`` signal delivers their queues instead.
``FLUSH_INTERVAL`` is a minute, so what arrives was delivered at shutdown.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from django_kameleoon.testing import DataApiServer
from tests.reliability.testsite.celery_app import make_app
from tests.support import python_module, site_environment, spawn

pytestmark = pytest.mark.slow

TASKS = 20


def test_prefork_children_deliver_on_worker_shutdown(
    data_api: DataApiServer, tmp_path: Path
) -> None:
    env = {
        **site_environment({"DATA_API_URL": data_api.url}),
        "KAMELEOON_TEST_CELERY_DIR": str(tmp_path),
    }
    argv = python_module(
        "celery",
        "--app=tests.reliability.testsite.celery_app",
        "worker",
        "--pool=prefork",
        "--concurrency=2",
        "--loglevel=INFO",
        "--without-gossip",
        "--without-mingle",
        "--without-heartbeat",
        "-O",
        "fair",
    )
    app = make_app(tmp_path)
    with spawn(argv, tmp_path / "worker.log", env=env) as worker:
        results = [
            app.send_task("testsite.convert", args=[f"task-{i}", 77, 0.05]) for i in range(TASKS)
        ]
        try:
            pids = {result.get(timeout=60, interval=0.05) for result in results}
        except Exception as exc:
            raise AssertionError(f"the tasks did not run: {exc!r}\n{worker.output()}") from exc
        assert data_api.events == [], "nothing is sent before shutdown (FLUSH_INTERVAL is 60 s)"
        worker.stop(timeout=30)
    output = worker.output()
    events = data_api.wait_for_events(TASKS, timeout=10)
    assert sorted(e["visitorCode"] for e in events) == sorted(f"task-{i}" for i in range(TASKS))
    assert {(e["eventType"], e["goalId"], e["revenue"]) for e in events} == {
        ("CONVERSION", 77, 1.5)
    }
    assert data_api.duplicates == []
    assert len(pids) == 2, f"both pool processes ran tasks: {pids}\n{output}"
    assert "event(s) dropped" not in output, output
