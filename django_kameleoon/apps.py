"""The app: connects the conversion receiver and registers the system checks."""

from __future__ import annotations

from django.apps import AppConfig


class KameleoonConfig(AppConfig):
    name = "django_kameleoon"
    verbose_name = "Kameleoon"

    def ready(self) -> None:
        from django_kameleoon import checks  # noqa: F401  (registers the checks)
        from django_kameleoon.api import queue_conversion
        from django_kameleoon.signals import conversion

        conversion.connect(queue_conversion, dispatch_uid="django_kameleoon.queue_conversion")
