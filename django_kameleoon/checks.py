"""System checks: catch configuration mistakes at ``manage.py check`` / ``runserver`` time."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error, register

from django_kameleoon.conf import settings_problems

__all__ = ["check_settings"]


@register()
def check_settings(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """Every problem in ``KAMELEOON``: missing SITE_CODE, a bad URL, limits over the API's."""
    return [
        Error(problem, id="django_kameleoon.E001")
        for problem in settings_problems(getattr(settings, "KAMELEOON", None))
    ]
