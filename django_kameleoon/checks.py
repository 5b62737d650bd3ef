"""System checks: catch configuration mistakes at ``manage.py check`` / ``runserver`` time.

- ``E001`` ``KAMELEOON['SITE_CODE']`` is missing or is not a Kameleoon project ID;
- ``E002`` running under uWSGI older than 2.0.27 without threads, where the sender thread runs
  only while a request is served and at exit (``lifecycle.uwsgi_threads_problem``);
- ``E003`` ``KAMELEOON`` is not a dict, or names a setting that does not exist;
- ``E004`` and up: one id per other setting, for a bad value of it, as declared beside the
  setting in ``conf.Settings`` (the README's "System checks" table lists them all); a dotted
  path (``BACKEND``, ``CONSENT``, the ``GOALS`` signals) is reported when it names nothing usable;
- ``W001`` the middleware is not in ``MIDDLEWARE``;
- ``W002`` the middleware is listed after one that answers pages without it (cache, flatpages),
  or after a subclass of one;
- ``W004`` a Django templates backend lacks the ``request`` context processor the tags need;
- ``W070`` ``PAGE_VIEWS`` needs the beacon, but its URL is not mounted.
- ``E064``-``E068``, ``W060``, ``W061``: a durable backend (Celery, Django Tasks) whose framework
  is missing or not set up, or that cannot be durable as configured (``check_backend_setup``).

``W003`` (listed before ``ConditionalGetMiddleware``) is no longer reported: a 304 counts as a
page view whichever of the two comes first.

What a check cannot see, because it is not in settings: ``cache_page`` and the conditional
decorators on views (both always run inside every middleware, so ours sees what they answer),
``{% cache %}`` fragments, caches in front of Django (a CDN, nginx, Varnish), and caching
middleware that does not derive from Django's. The README's "Cached pages" says what each does.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error, Warning, register
from django.core.exceptions import ImproperlyConfigured
from django.urls import NoReverseMatch, reverse
from django.utils.module_loading import import_string

from django_kameleoon.beacon import BEACON_URL_NAME
from django_kameleoon.conf import get_settings, load_settings, settings_problems
from django_kameleoon.lifecycle import uwsgi_threads_problem

__all__ = [
    "MIDDLEWARE_PATH",
    "check_backend_setup",
    "check_beacon_urls",
    "check_context_processor",
    "check_middleware",
    "check_settings",
    "check_uwsgi_threads",
]

MIDDLEWARE_PATH = "django_kameleoon.middleware.KameleoonMiddleware"
REQUEST_PROCESSOR = "django.template.context_processors.request"
DJANGO_TEMPLATES = "django.template.backends.django.DjangoTemplates"

_FETCH_REASON = (
    "it answers cache hits itself, so pages served from the cache would never be tracked"
)
#: Middleware that must come *after* ours (inner to it), and why; their subclasses too, the
#: first match in this order giving the reason. Middleware that can only answer early with a
#: redirect or an error (CommonMiddleware, LocaleMiddleware, CSRF) does not matter: neither is a
#: page view, and conversions reach the queue whatever the order.
MUST_FOLLOW: dict[str, str] = {
    "django.middleware.cache.FetchFromCacheMiddleware": _FETCH_REASON,
    "django.middleware.cache.CacheMiddleware": _FETCH_REASON,
    "django.middleware.cache.UpdateCacheMiddleware": (
        "it would cache responses carrying a new visitor's Set-Cookie, and serve that one "
        "visitor code to everyone who gets the cached page"
    ),
    "django.contrib.flatpages.middleware.FlatpageFallbackMiddleware": (
        "it turns 404s into flat pages on the way out, after this middleware saw the 404"
    ),
}


@register()
def check_settings(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """Every problem in ``KAMELEOON``, each under the id its setting declares.

    One id per setting, so a site can silence one kind of problem without silencing them all.
    Dotted paths are resolved here: at run time one that names nothing is only logged.
    """
    raw = getattr(settings, "KAMELEOON", None)
    return [
        Error(problem.message, id=f"django_kameleoon.{problem.check_id}")
        for problem in settings_problems(raw, resolve=True)
    ]


@register()
def check_middleware(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """The middleware must be installed, and placed where it sees every page's final response."""
    middleware = [str(path) for path in getattr(settings, "MIDDLEWARE", None) or ()]
    ours = next((i for i, path in enumerate(middleware) if _is_ours(path)), None)
    if ours is None:
        return [
            Warning(
                f"{MIDDLEWARE_PATH} is not in MIDDLEWARE: no page views will be tracked.",
                hint=f"Add '{MIDDLEWARE_PATH}' to MIDDLEWARE, near the top: after "
                "SecurityMiddleware, before the cache middleware.",
                id="django_kameleoon.W001",
            )
        ]
    return [
        Warning(
            f"KameleoonMiddleware is listed after {path}.",
            hint=f"Move KameleoonMiddleware above it: {reason}.",
            id="django_kameleoon.W002",
        )
        for path in middleware[:ours]
        if (reason := _must_follow(path)) is not None
    ]


def _lineage(path: str) -> frozenset[str]:
    """The dotted names of the class at ``path`` and of its bases; only ``path`` itself when it
    cannot be imported (Django reports unimportable middleware itself, at startup).

    Compared by name, so this layer need not import the middleware module.
    """
    try:
        cls = import_string(path)
    except Exception:
        return frozenset({path})
    mro = getattr(cls, "__mro__", ())
    return frozenset({path, *(f"{c.__module__}.{c.__qualname__}" for c in mro)})


def _is_ours(path: str) -> bool:
    """Our middleware or a subclass of it."""
    return MIDDLEWARE_PATH in _lineage(path)


def _must_follow(path: str) -> str | None:
    """Why ``path`` must come after ours, if it (or a class it derives from) must."""
    lineage = _lineage(path)
    return next((why for name, why in MUST_FOLLOW.items() if name in lineage), None)


@register()
def check_context_processor(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """The tags find the visitor through ``request`` in the context; warn where it is missing."""
    messages: list[CheckMessage] = []
    for index, engine in enumerate(getattr(settings, "TEMPLATES", None) or ()):
        if engine.get("BACKEND") != DJANGO_TEMPLATES:
            continue
        processors: Sequence[str] = (engine.get("OPTIONS") or {}).get("context_processors", ())
        if REQUEST_PROCESSOR not in processors:
            messages.append(
                Warning(
                    f"TEMPLATES[{index}] ({engine.get('NAME', DJANGO_TEMPLATES)}) lacks the "
                    "request context processor that the {% load kameleoon %} tags need.",
                    hint=f"Add '{REQUEST_PROCESSOR}' to its OPTIONS['context_processors'].",
                    id="django_kameleoon.W004",
                )
            )
    return messages


@register()
def check_uwsgi_threads(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """Under uWSGI < 2.0.27 without threads, the sender thread is starved between requests."""
    problem = uwsgi_threads_problem()
    if problem is None:
        return []
    return [
        Error(
            problem,
            hint="Start uWSGI with --enable-threads (enable-threads = true in its ini file), "
            "or with --threads N, or upgrade to uWSGI 2.0.27 or later.",
            id="django_kameleoon.E002",
        )
    ]


@register()
def check_beacon_urls(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """``PAGE_VIEWS`` ``"beacon"`` and ``"auto"`` count pages by the beacon's image, which needs
    its URL; without it ``{% kameleoon_beacon %}`` renders nothing and logs why."""
    try:
        mode = get_settings().PAGE_VIEWS
    except ImproperlyConfigured:
        return []  # check_settings reports it
    if mode == "middleware":
        return []
    try:
        reverse(BEACON_URL_NAME)
    except NoReverseMatch:
        consequence = (
            "no page view is counted"
            if mode == "beacon"
            else "the middleware counts the pages that carry it"
        )
        return [
            Warning(
                f"KAMELEOON['PAGE_VIEWS'] is {mode!r}, but the beacon's URL is not mounted: "
                f"{{% kameleoon_beacon %}} renders nothing, so {consequence}.",
                hint='Add path("kameleoon/", include("django_kameleoon.urls")) to your '
                "ROOT_URLCONF.",
                id="django_kameleoon.W070",
            )
        ]
    return []


@register()
def check_backend_setup(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """The framework a durable backend hands events to is installed and set up.

    Asked of the backend class itself (``setup_problems``), which refuses to start on the same
    errors; nothing is reported while ``BACKEND`` is itself invalid (``E005`` says so).
    """
    try:
        current = load_settings(getattr(settings, "KAMELEOON", None))
        backend = import_string(current.BACKEND)
    except Exception:
        return []
    problems = getattr(backend, "setup_problems", None)
    if problems is None:
        return []
    return [
        (Error if problem.check_id.startswith("E") else Warning)(
            problem.message, id=f"django_kameleoon.{problem.check_id}"
        )
        for problem in problems(current)
    ]
