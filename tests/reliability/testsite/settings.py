"""Settings of the reliability test site: the test suite's, with ``KAMELEOON`` from the environment.

``KAMELEOON_TEST_SETTINGS`` is a JSON object laid over the defaults below; it must at least give
``DATA_API_URL``. ``KAMELEOON_TEST_DATABASE``, when set, is the path of a SQLite file to use
instead of the suite's in-memory database (which each thread of a server would see empty).
Every record of the ``django_kameleoon`` logger goes to stderr, where the tests read what the
library said (for instance how many events it could not deliver at exit), and so does every
request that failed with a 500.
"""

from __future__ import annotations

import json
import os
from typing import Any

from tests.settings import *  # noqa: F403

_DEFAULTS: dict[str, Any] = {
    "SITE_CODE": "testsite01",
    "BACKEND": "threaded",
    # Long, so that nothing is sent while the site runs: what arrives was delivered at exit.
    "FLUSH_INTERVAL": 60.0,
    "RETRY_BACKOFF": 0.05,
    "TIMEOUT": 2.0,
    "SHUTDOWN_TIMEOUT": 5.0,
}
if os.environ.get("KAMELEOON_TEST_DATABASE"):
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": os.environ["KAMELEOON_TEST_DATABASE"],
        }
    }
KAMELEOON = {**_DEFAULTS, **json.loads(os.environ.get("KAMELEOON_TEST_SETTINGS", "{}"))}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(process)d %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "loggers": {
        "django_kameleoon": {"handlers": ["stderr"], "level": "INFO"},
        # A view that failed (a 500), with its traceback: Django's default says nothing unless
        # DEBUG is on.
        "django.request": {"handlers": ["stderr"], "level": "ERROR"},
    },
}

if os.environ.get("KAMELEOON_TEST_BROKER"):
    # The site's Celery app, made as a project's __init__.py makes it.
    import tests.reliability.testsite.durable  # noqa: F401
if os.environ.get("KAMELEOON_TEST_POSTGRES"):
    # Django Tasks on django-tasks-db, in a PostgreSQL database of the test's own.
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": os.environ["KAMELEOON_TEST_POSTGRES"],
            "HOST": "127.0.0.1",
            "USER": "postgres",
        }
    }
    INSTALLED_APPS = [*INSTALLED_APPS, "django_tasks", "django_tasks_db"]  # noqa: F405
    TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend"}}
