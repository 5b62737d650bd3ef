"""Caches and visitors: what a response that belongs to one visitor must tell every cache.

Two kinds of response belong to one visitor and must never be served to another:

- one whose view *used* the visitor (rendered its code, recorded a conversion, read
  ``get_visitor_code()``): another visitor would see the wrong code, and its conversion would
  not be recorded, since a cache hit runs no view;
- one that carries a *new visitor's cookie*: a shared cache would hand that code to everyone.

Django's cache middleware and ``cache_page`` store a response *before* this app's middleware
sees it (ours sits above them, so that it sees cache hits too), so the first kind is kept out of
Django's cache at the moment the visitor is used (:func:`keep_out_of_django_cache`), and both
kinds are marked ``Cache-Control: private`` on the way out (:func:`make_private`) for the caches
beyond Django: a CDN, a reverse proxy, a shared browser cache.

``private`` is the whole mark. ``Vary: Cookie`` would add nothing that ``private`` does not
already give (no shared cache stores the response), and it would not be enough alone: every new
visitor arrives without a cookie, so a shared cache keyed on the Cookie header would still serve
the first new visitor's response, cookie included, to every other new visitor.
"""

from __future__ import annotations

import logging
import threading

from django.http import HttpRequest, HttpResponseBase
from django.utils.cache import patch_cache_control

__all__ = ["keep_out_of_django_cache", "make_private", "response_header", "shared_cacheable"]

logger = logging.getLogger("django_kameleoon")

#: Directives by which a response says that shared caches may store it.
_SHARED = frozenset({"public", "s-maxage"})
_FRESH = frozenset({"max-age"}) | _SHARED
_NOT_STORED_SHARED = frozenset({"private", "no-store"})

#: How many paths :func:`make_private` warns about, each once: enough to name every public
#: page of a site, and a bound on memory and log lines when paths are made up by clients.
MAX_WARNED_PATHS = 1000
_warned_paths: set[str] = set()
_warned_lock = threading.Lock()


def keep_out_of_django_cache(request: HttpRequest) -> None:
    """Tell Django's cache middleware (and ``cache_page``) not to store this response.

    Both decide with the request attribute ``_cache_update_cache``, which their request phase
    sets to True for a GET they will store; it is the only way to reach them from a view or a
    template, which have no response to mark yet. Unchanged since Django 1.x, and tested here
    against the Django in use (``tests/test_caching.py``).
    """
    if getattr(request, "_cache_update_cache", False):
        request._cache_update_cache = False  # type: ignore[attr-defined]


def response_header(response: HttpResponseBase, name: str) -> str:
    """The value of the response header ``name`` (lower case), or ``""``: what Django's
    ``response.get(name, "")`` gives, for ``Cache-Control`` here and the middleware's page
    verdict (``Content-Type``, ``Content-Disposition``).

    Read from the store behind ``response.headers`` where it has one (Django 3.2 on): Django's
    own ``response.get()`` raises and catches a ``KeyError`` for an absent header, which costs
    half a microsecond, and nearly every page lacks most of the headers asked for here.
    """
    store = getattr(response.headers, "_store", None)
    if not isinstance(store, dict):
        return str(response.get(name, ""))
    found = store.get(name)
    return str(found[1]) if found else ""


def _directives(response: HttpResponseBase) -> frozenset[str]:
    """The names of the response's ``Cache-Control`` directives, lower-cased."""
    header = response_header(response, "cache-control")
    return frozenset(part.partition("=")[0].strip().lower() for part in header.split(","))


def shared_cacheable(response: HttpResponseBase) -> bool:
    """Whether the response gives caches leave to store it: ``public``, ``s-maxage``,
    ``max-age`` or ``Expires``, without ``private`` or ``no-store``.

    What Django's cache middleware puts on every page it caches, and what ``cache_control``
    and ``cache_page`` put there. A response without any of these is left alone: caches only
    guess at its freshness, and the mainstream ones (Varnish, nginx, Fastly, Cloudflare)
    store no response that sets a cookie.
    """
    directives = _directives(response)
    if directives & _NOT_STORED_SHARED:
        return False
    return bool(directives & _FRESH) or response.has_header("Expires")


def make_private(request: HttpRequest, response: HttpResponseBase, why: str) -> None:
    """Mark the response ``Cache-Control: private`` (dropping ``public``).

    When the site had said ``public`` or ``s-maxage``, its own choice is overridden, so that is
    logged at WARNING, once per path (for the first :data:`MAX_WARNED_PATHS` paths).
    """
    directives = _directives(response)
    if directives & _SHARED and not directives & _NOT_STORED_SHARED:
        _warn_once(request.path, why)
    patch_cache_control(response, private=True)


def _warn_once(path: str, why: str) -> None:
    with _warned_lock:
        if path in _warned_paths or len(_warned_paths) >= MAX_WARNED_PATHS:
            return
        _warned_paths.add(path)
    logger.warning(
        "Kameleoon: the response to %s said Cache-Control: public (or s-maxage), but %s: it "
        "was sent as private, so that no shared cache serves it to another visitor (logged "
        "once for this path)",
        path[:200],
        why,
    )
