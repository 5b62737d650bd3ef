"""The app: connects the conversion receiver and the GOALS mapping, and registers the checks."""

from __future__ import annotations

import logging

from django.apps import AppConfig

logger = logging.getLogger("django_kameleoon")


class KameleoonConfig(AppConfig):
    name = "django_kameleoon"
    verbose_name = "Kameleoon"

    def ready(self) -> None:
        from django_kameleoon import checks, workers  # importing checks registers them
        from django_kameleoon.api import queue_conversion
        from django_kameleoon.goals import sync_goals
        from django_kameleoon.signals import conversion

        conversion.connect(
            queue_conversion, weak=False, dispatch_uid="django_kameleoon.queue_conversion"
        )
        # Here rather than at import: the signals GOALS names live in other apps' modules,
        # which can only be imported once every app is loaded.
        sync_goals()
        # System checks do not run inside a uWSGI worker, where this one matters most.
        problem = checks.uwsgi_threads_problem()
        if problem:
            logger.error("Kameleoon: %s", problem)
        # Celery's prefork children exit without atexit: deliver their queues on its signal.
        workers.connect()
