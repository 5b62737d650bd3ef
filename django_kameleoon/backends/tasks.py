"""``TasksBackend``: batches leave the web process as tasks of Django's Tasks framework
(``django.tasks`` on Django 6.0 and later, the ``django-tasks`` backport before), on the
``KAMELEOON['TASKS_BACKEND']`` alias of ``TASKS``: ``django_kameleoon.tasks.deliver_batch_task``.

The framework has no retries of its own: the task enqueues a batch again with ``run_after`` when
the Data API is down, which needs a backend that supports deferral (``supports_defer``, such as
``django-tasks-db``'s DatabaseBackend). The system check warns about one that does not.
"""

from __future__ import annotations

from typing import Any

from django.db import close_old_connections

from django_kameleoon.backends.base import Counters
from django_kameleoon.backends.handoff import HandoffBackend, Payload, Publisher
from django_kameleoon.conf import Problem, Settings

__all__ = ["TasksBackend"]


class TasksPublisher(Publisher):
    def __init__(self, settings: Settings, counters: Counters, **options: Any) -> None:
        super().__init__(settings, counters, **options)
        from django_kameleoon.tasks import deliver_batch_task

        task: Any = deliver_batch_task
        self.task = task.using(backend=settings.TASKS_BACKEND)

    def publish(self, payload: Payload) -> None:
        try:
            self.task.enqueue(payload)
        except Exception:
            # A database backend's connection that failed must not be reused for the retry.
            close_old_connections()
            raise


class TasksBackend(HandoffBackend):
    delivery_class = TasksPublisher

    @classmethod
    def setup_problems(cls, settings: Settings) -> list[Problem]:
        from django_kameleoon.tasks import deliver_batch_task, tasks_framework

        framework = tasks_framework()
        if framework is None:
            return [
                Problem(
                    "E066",
                    "KAMELEOON['BACKEND'] is the TasksBackend, but Django's Tasks framework is "
                    "missing: it needs Django 6.0, or the django-tasks backport "
                    "(pip install 'django-kameleoon[tasks]')",
                )
            ]
        alias = settings.TASKS_BACKEND
        try:
            backend = framework.task_backends[alias]
        except Exception as exc:
            return [
                Problem(
                    "E067",
                    f"KAMELEOON['TASKS_BACKEND'] {alias!r} is not a usable backend of Django's "
                    f"TASKS setting: {type(exc).__name__}: {exc}",
                )
            ]
        if not callable(getattr(deliver_batch_task, "enqueue", None)):
            return [
                Problem(
                    "E068",
                    "django_kameleoon.tasks.deliver_batch_task could not be made a task of "
                    f"backend {alias!r} when it was imported",
                )
            ]
        if not backend.supports_defer:
            return [
                Problem(
                    "W060",
                    f"TASKS[{alias!r}] ({type(backend).__name__}) cannot defer tasks: while the "
                    "Data API is down, each batch's task waits in its worker (the "
                    "ImmediateBackend: in the web process's hand-off thread) instead of "
                    "being enqueued again for later",
                )
            ]
        return []
