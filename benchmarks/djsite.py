"""The benchmark's Django site: ``startproject``'s settings and middleware, one small HTML view.

``configure()`` sets Django up (settings in code, this module as the URLconf); ``handler()``
builds a ``WSGIHandler`` for a given middleware list, so the three page-view stacks live side
by side in one process and can be measured in alternating rounds.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import path

__all__ = ["STARTPROJECT_MIDDLEWARE", "async_urlpatterns", "configure", "handler", "urlpatterns"]

HOST = "shop.example.com"

#: ``django-admin startproject``'s MIDDLEWARE (Django 4.2 to 5.2), unchanged.
STARTPROJECT_MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]


def with_middleware(extra: str) -> list[str]:
    """The stack with ``extra`` where our docs and system check put ours: after Security."""
    return [STARTPROJECT_MIDDLEWARE[0], extra, *STARTPROJECT_MIDDLEWARE[1:]]


def configure(kameleoon: dict[str, Any], **overrides: Any) -> None:
    """Django's settings for the benchmark site; ``overrides`` replace any of them."""
    import django
    from django.conf import settings

    options: dict[str, Any] = dict(
        DEBUG=False,
        SECRET_KEY="benchmark-only-not-secret",
        ALLOWED_HOSTS=[HOST],
        ROOT_URLCONF=__name__,
        USE_TZ=True,
        INSTALLED_APPS=[
            "django.contrib.admin",
            "django.contrib.auth",
            "django.contrib.contenttypes",
            "django.contrib.sessions",
            "django.contrib.messages",
            "django.contrib.staticfiles",
            "django_kameleoon",
        ],
        MIDDLEWARE=STARTPROJECT_MIDDLEWARE,
        TEMPLATES=[
            {
                "BACKEND": "django.template.backends.django.DjangoTemplates",
                "DIRS": [str(Path(__file__).parent / "templates")],
                "APP_DIRS": True,
                "OPTIONS": {
                    "context_processors": [
                        "django.template.context_processors.request",
                        "django.contrib.auth.context_processors.auth",
                        "django.contrib.messages.context_processors.messages",
                    ]
                },
            }
        ],
        DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}},
        STATIC_URL="static/",
        LOGGING_CONFIG=None,
        KAMELEOON=kameleoon,
    )
    options.update(overrides)
    settings.configure(**options)
    django.setup()


def handler(middleware: list[str]) -> Any:
    """A WSGI handler with this middleware stack (Django reads MIDDLEWARE once, here)."""
    from django.conf import settings
    from django.core.handlers.wsgi import WSGIHandler

    saved = settings.MIDDLEWARE
    settings.MIDDLEWARE = middleware
    try:
        return WSGIHandler()
    finally:
        settings.MIDDLEWARE = saved


PRODUCTS = [{"id": n, "name": f"Product {n}", "price": 9.99 + n * 3.5} for n in range(1, 9)]


def page(request: HttpRequest, **kwargs: Any) -> HttpResponse:
    """A small HTML page rendered from a template, as most Django sites serve them."""
    title = next(iter(kwargs.values()), "Home")
    context = {"title": str(title).title(), "intro": "Fresh arrivals.", "products": PRODUCTS}
    return render(request, "page.html", context)


async def async_page(request: HttpRequest, **kwargs: Any) -> HttpResponse:
    """The same page from an async view, as an ASGI site serves it (rendering is pure CPU)."""
    return page(request, **kwargs)


def _routes(view: Any) -> list[Any]:
    return [
        path("", view),
        path("products/<int:pk>/", view),
        path("category/<slug:name>/", view),
        path("blog/<slug:slug>/", view),
    ]


urlpatterns = _routes(page)
async_urlpatterns = _routes(async_page)
