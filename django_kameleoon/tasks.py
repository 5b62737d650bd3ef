"""The tasks that the durable backends hand batches to, for the site's own workers to run.

- ``deliver_batch``: the Celery task named ``django_kameleoon.deliver_batch`` (``CeleryBackend``).
  Celery's ``app.autodiscover_tasks()`` finds it here; it runs with ``acks_late`` and
  ``reject_on_worker_lost``, so a worker that dies mid-delivery leaves the message to another.
- ``deliver_batch_task``: the same through Django's Tasks framework (``TasksBackend``), from
  ``django.tasks`` (Django 6.0 on) or the ``django-tasks`` backport.

Each is defined only when its framework can be imported: importing this module never fails for
lack of one. Both do their work in :func:`django_kameleoon.backends.worker.deliver_batch`.
"""

from __future__ import annotations

import importlib
import logging
import time
from datetime import timedelta
from typing import Any

from django.core.exceptions import ImproperlyConfigured

from django_kameleoon.backends.worker import Later
from django_kameleoon.backends.worker import deliver_batch as _deliver
from django_kameleoon.conf import report_misconfiguration

__all__ = ["CELERY_TASK_NAME", "TASKS_MODULES", "tasks_framework"]

logger = logging.getLogger("django_kameleoon")

CELERY_TASK_NAME = "django_kameleoon.deliver_batch"
#: Django's Tasks framework, then its backport: the first that imports is used.
TASKS_MODULES = ("django.tasks", "django_tasks")
#: How long a batch waits before another try while this worker's settings are invalid.
MISCONFIGURED_DELAY = 60.0


def _run(payload: list[dict[str, Any]], failures: int, counted: int) -> Later | None:
    """Deliver, or (settings invalid on this worker) hand the whole batch back for later."""
    try:
        return _deliver(payload, failures=failures, counted=counted)
    except ImproperlyConfigured as exc:
        report_misconfiguration(exc)
        return Later(payload, MISCONFIGURED_DELAY, failures, counted)


def tasks_framework() -> Any:
    """The Tasks framework's module (``django.tasks`` or ``django_tasks``), or None."""
    for name in TASKS_MODULES:
        try:
            return importlib.import_module(name)
        except ImportError:
            continue
    return None


try:
    from celery import shared_task
except ImportError:  # Celery is an optional extra
    pass
else:

    @shared_task(  # type: ignore[untyped-decorator]
        name=CELERY_TASK_NAME,
        bind=True,
        acks_late=True,
        reject_on_worker_lost=True,
        ignore_result=True,
        max_retries=None,  # an outage is retried for as long as it lasts; MAX_RETRIES the rest
    )
    def deliver_batch(
        self: Any, events: list[dict[str, Any]], failures: int = 0, counted: int = 0
    ) -> None:
        """Deliver one batch; hand what must wait back to the broker with a countdown."""
        later = _run(events, failures, counted)
        if later is not None:
            args = (later.events, later.failures, later.counted)
            raise self.retry(args=args, countdown=later.delay)


def _tasks_alias() -> str:
    """``TASKS_BACKEND`` as the site wrote it, for the task's default backend."""
    try:
        from django.conf import settings

        alias = (getattr(settings, "KAMELEOON", None) or {}).get("TASKS_BACKEND", "default")
    except Exception:
        return "default"
    return alias if isinstance(alias, str) else "default"


def deliver_batch_task(events: list[dict[str, Any]], failures: int = 0, counted: int = 0) -> None:
    """Deliver one batch; what must wait is enqueued again with ``run_after`` (a backend that
    cannot defer, such as the ImmediateBackend, waits here instead: the system check warns)."""
    while True:
        later = _run(events, failures, counted)
        if later is None:
            return
        events, failures, counted = later.events, later.failures, later.counted
        task = _task_for(later.delay)
        if task is not None:
            task.enqueue(events, failures, counted)
            return
        time.sleep(later.delay)


def _task_for(delay: float) -> Any:
    """This task on its backend, deferred by ``delay``; None when the backend cannot defer."""
    from django.utils import timezone

    task: Any = deliver_batch_task
    if not getattr(task.get_backend(), "supports_defer", False):
        return None
    return task.using(run_after=timezone.now() + timedelta(seconds=delay))


_framework = tasks_framework()
if _framework is not None:
    try:
        deliver_batch_task = _framework.task(backend=_tasks_alias())(deliver_batch_task)
    except Exception as exc:  # an alias missing from TASKS: the system check says so
        logger.debug("Kameleoon: deliver_batch_task not made: %r", exc)
