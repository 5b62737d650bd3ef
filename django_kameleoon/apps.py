"""The app: connects the GOALS mapping and the server lifecycle hooks, registers the checks."""

from __future__ import annotations

from django.apps import AppConfig


class KameleoonConfig(AppConfig):
    name = "django_kameleoon"
    verbose_name = "Kameleoon"

    def ready(self) -> None:
        from django_kameleoon import checks, lifecycle, scope  # noqa: F401 (registers checks)
        from django_kameleoon.goals import sync_goals

        # Here rather than at import: the signals GOALS names live in other apps' modules,
        # which can only be imported once every app is loaded.
        sync_goals()
        # Celery's prefork children and uWSGI's workers need hooks of their own.
        lifecycle.connect()
        # Requests served without the middleware must not wait for the queue either.
        scope.connect()
