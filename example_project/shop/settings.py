"""Settings of the example shop: Django's startproject defaults, plus django-kameleoon.

The Kameleoon project and the Data API URL come from the environment, so the same site runs
against the local collector (the default: ``make serve``, ``make demo``) or, with your own
project ID and ``https://eu-data.kameleoon.io``, against Kameleoon itself.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent

SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "example-project-only-not-a-secret")
DEBUG = os.environ.get("DJANGO_DEBUG", "1") == "1"
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "[::1]", "testserver"]

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_kameleoon",
    "shop",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # Near the top, so it sees the final response of every page; see the README.
    "django_kameleoon.middleware.KameleoonMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "shop.urls"
WSGI_APPLICATION = "shop.wsgi.application"
ASGI_APPLICATION = "shop.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",  # the kameleoon tags need it
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "shop.context_processors.shop",
            ],
        },
    },
]

# SQLite, as startproject makes it. The shop itself stores nothing (its catalogue is in code),
# and sessions live in signed cookies, so no request touches the database: the demo runs
# without `migrate`. `make serve` migrates anyway, to keep runserver's start-up quiet.
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("SHOP_DATABASE", BASE_DIR / "db.sqlite3"),
    }
}
SESSION_ENGINE = "django.contrib.sessions.backends.signed_cookies"

USE_TZ = True
STATIC_URL = "static/"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Product pages are cached (``cache_page``) in files, which every gunicorn worker shares.
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
        "LOCATION": os.environ.get(
            "SHOP_CACHE_DIR", os.path.join(tempfile.gettempdir(), "kameleoon-demo-shop-cache")
        ),
    }
}

KAMELEOON = {
    "SITE_CODE": os.environ.get("KAMELEOON_SITE_CODE", "demoshop01"),
    "DATA_API_URL": os.environ.get("KAMELEOON_DATA_API_URL", "http://127.0.0.1:8765"),
    # Product pages carry {% kameleoon_beacon %} and are cached: their beacon counts them,
    # whoever served them. The middleware counts every other page.
    "PAGE_VIEWS": "auto",
}

#: Add Kameleoon's JavaScript tag to every page (``{% kameleoon_script %}``): off unless asked.
KAMELEOON_HYBRID = os.environ.get("KAMELEOON_HYBRID", "0") == "1"

#: The shop's goals, as configured in the Kameleoon project.
SHOP_GOALS = {"purchase": 101, "thank_you_page": 102}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    # Delivery problems (retries, drops, what was lost at exit) are worth seeing in a demo.
    "loggers": {"django_kameleoon": {"handlers": ["console"], "level": "INFO"}},
}
