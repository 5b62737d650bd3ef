"""``CeleryBackend``: batches leave the web process as Celery tasks, ``deliver_batch``.

See :mod:`django_kameleoon.backends.handoff` for the web side, :mod:`django_kameleoon.tasks` for
the task. The task is looked up once per process, and each message is published through the
app's producer pool (one broker connection, kept), without Celery's own publish retries: the
hand-off thread retries, with backoff, while the broker is down.
"""

from __future__ import annotations

import importlib
from typing import Any

from django_kameleoon.backends.base import Counters
from django_kameleoon.backends.handoff import HandoffBackend, Payload, Publisher
from django_kameleoon.conf import Problem, Settings

__all__ = ["CeleryBackend"]


class CeleryPublisher(Publisher):
    def __init__(self, settings: Settings, counters: Counters) -> None:
        super().__init__(settings, counters)
        from celery import current_app

        from django_kameleoon.tasks import CELERY_TASK_NAME

        self.task = current_app.tasks[CELERY_TASK_NAME]
        self.options: dict[str, Any] = {"retry": False}
        if settings.CELERY_QUEUE is not None:
            self.options["queue"] = settings.CELERY_QUEUE

    def publish(self, payload: Payload) -> None:
        self.task.apply_async((payload,), **self.options)


class CeleryBackend(HandoffBackend):
    delivery_class = CeleryPublisher

    @classmethod
    def setup_problems(cls, settings: Settings) -> list[Problem]:
        try:
            celery = importlib.import_module("celery")
        except ImportError:
            return [
                Problem(
                    "E064",
                    "KAMELEOON['BACKEND'] is the CeleryBackend, but Celery is not installed "
                    "(pip install 'django-kameleoon[celery]')",
                )
            ]
        app = celery.current_app._get_current_object()
        if app.main == "default" and not app.conf.broker_url:
            # Celery's fallback app: the site made none (or made it after this ran).
            return [
                Problem(
                    "E065",
                    "KAMELEOON['BACKEND'] is the CeleryBackend, but no Celery app is set up: "
                    "import your app in your project's __init__.py, as Celery's Django guide "
                    "shows",
                )
            ]
        queue = settings.CELERY_QUEUE
        if queue is not None and queue != app.conf.task_default_queue:
            declared = {q.name for q in app.conf.task_queues or ()}
            if queue not in declared:
                return [
                    Problem(
                        "W061",
                        f"KAMELEOON['CELERY_QUEUE'] {queue!r} is neither the Celery app's default "
                        "queue nor in its task_queues: only a worker started with "
                        f"-Q {queue} runs these tasks",
                    )
                ]
        return []
