"""Settings of the reliability site with its optional integrations: ``/metrics`` (Prometheus),
and the debug toolbar with ``KameleoonPanel`` on every request when ``KAMELEOON_TEST_TOOLBAR``
is set (its static files served by Django, as ``runserver`` would)."""

from __future__ import annotations

import os

from tests.reliability.testsite.settings import *  # noqa: F403
from tests.reliability.testsite.settings import INSTALLED_APPS, MIDDLEWARE

ROOT_URLCONF = "tests.urls_extras"

if os.environ.get("KAMELEOON_TEST_TOOLBAR"):
    INSTALLED_APPS = [*INSTALLED_APPS, "debug_toolbar"]
    MIDDLEWARE = ["debug_toolbar.middleware.DebugToolbarMiddleware", *MIDDLEWARE]
    ROOT_URLCONF = "tests.urls_toolbar"
    DEBUG_TOOLBAR_PANELS = ["django_kameleoon.panels.KameleoonPanel"]
    DEBUG_TOOLBAR_CONFIG = {"SHOW_TOOLBAR_CALLBACK": lambda request: True}
