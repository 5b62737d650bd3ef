"""The test site's Celery app on a real broker, for the durable backends' tests.

The environment says which broker (``KAMELEOON_TEST_BROKER``: a Redis URL with its own
database number, or RabbitMQ's), which queue (``KAMELEOON_TEST_QUEUE``, unique per test) and
Redis's ``visibility_timeout`` (``KAMELEOON_TEST_VISIBILITY``). The site's settings import this
module when a broker is given, as a project's ``__init__.py`` imports its Celery app.
"""

from __future__ import annotations

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.reliability.testsite.settings")

app = Celery("durable")
app.conf.update(
    broker_url=os.environ.get("KAMELEOON_TEST_BROKER", "redis://127.0.0.1:6379/15"),
    task_default_queue=os.environ.get("KAMELEOON_TEST_QUEUE", "kameleoon"),
    broker_transport_options={
        "visibility_timeout": float(os.environ.get("KAMELEOON_TEST_VISIBILITY", "3600")),
    },
    broker_connection_retry_on_startup=True,
    task_serializer="json",
    accept_content=["json"],
    task_ignore_result=True,
    worker_prefetch_multiplier=1,
    worker_enable_remote_control=False,
    worker_hijack_root_logger=False,
)
app.autodiscover_tasks()
