"""A Celery app for the test site, on kombu's filesystem transport: no broker server needed.

``KAMELEOON_TEST_CELERY_DIR`` names the folder that holds the queue and the results; the test
that starts the worker makes it, and builds an app of its own with :func:`make_app` to send tasks.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.reliability.testsite.settings")


def make_app(folder: Path) -> Celery:
    queue = folder / "queue"
    results = folder / "results"
    for path in (queue, results):
        path.mkdir(parents=True, exist_ok=True)
    app = Celery("testsite")
    app.conf.update(
        broker_url="filesystem://",
        broker_transport_options={
            "data_folder_in": str(queue),
            "data_folder_out": str(queue),
            "control_folder": str(folder / "control"),
            "polling_interval": 0.05,
        },
        broker_connection_retry_on_startup=True,
        result_backend=f"file://{results}",
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        worker_enable_remote_control=False,
        worker_hijack_root_logger=False,
        worker_prefetch_multiplier=1,
    )
    return app


app = make_app(Path(os.environ.get("KAMELEOON_TEST_CELERY_DIR", tempfile.gettempdir())))


@app.task(name="testsite.convert")
def convert(visitor_code: str, goal_id: int, seconds: float = 0.0) -> int:
    """Track a conversion; return the pid of the pool process that ran the task."""
    import django_kameleoon

    django_kameleoon.track_conversion(visitor_code, goal_id, revenue=1.5)
    time.sleep(seconds)  # a task that takes a while, so that both pool processes get some
    return os.getpid()
