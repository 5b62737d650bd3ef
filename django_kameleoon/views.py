"""The beacon view: the image ``{% kameleoon_beacon %}`` renders, and the page view it counts.

Whatever happens, the answer is the same transparent GIF, never cached (``no-store``): an
error page would show as a broken image, and a cached image would count nothing. Each reason
to track nothing (a token this site did not sign, a page on another host, a bot, no consent,
an excluded path) is logged at DEBUG, without visitor data.

The view is light: exempt from CSRF (an image request carries no token), it touches no
session, and it reaches the database only through a ``CONSENT`` callable that does. It is a
sync view, so that callable may use the ORM under ASGI too.
"""

from __future__ import annotations

import logging
from urllib.parse import urlsplit

from django.core import signing
from django.core.exceptions import DisallowedHost, ImproperlyConfigured
from django.http import HttpRequest, HttpResponse
from django.urls import get_script_prefix
from django.utils.cache import patch_cache_control
from django.views.decorators.csrf import csrf_exempt

from django_kameleoon.beacon import TOKEN_PARAMETER, TRANSPARENT_GIF, read_token
from django_kameleoon.caching import keep_out_of_django_cache
from django_kameleoon.conf import Settings, get_settings, report_misconfiguration
from django_kameleoon.decisions import PAGE_VIEW
from django_kameleoon.middleware import page_rules_verdict, queue_page_view, store_visitor_code
from django_kameleoon.visitor import request_header, request_state

__all__ = ["beacon", "page_href", "track_beacon"]

logger = logging.getLogger("django_kameleoon")


@csrf_exempt
def beacon(request: HttpRequest) -> HttpResponse:
    """Count the view of the page that carried the image; always answer the GIF."""
    response = HttpResponse(TRANSPARENT_GIF, content_type="image/gif")
    patch_cache_control(response, no_store=True)
    keep_out_of_django_cache(request)
    try:
        why_not = track_beacon(request, get_settings())
        if why_not is None:
            store_visitor_code(request, response, False, True)
        else:
            logger.debug("Kameleoon: beacon not tracked: %s", why_not)
    except ImproperlyConfigured as exc:
        report_misconfiguration(exc)
    except Exception as exc:
        # The type only: a message may quote visitor input (see middleware._guarded).
        logger.error("Kameleoon: could not track a beacon (%s)", type(exc).__name__)
        logger.debug("Kameleoon: beacon error", exc_info=True)
    return response


def track_beacon(request: HttpRequest, settings: Settings) -> str | None:
    """Queue the page view the beacon reports; None when queued, else why not."""
    if settings.PAGE_VIEWS == "middleware":
        return "PAGE_VIEWS is 'middleware'"
    if request.method != "GET":
        return f"a {request.method} request, not an image's GET"
    try:
        signed_href, fields = read_token(request.GET.get(TOKEN_PARAMETER, ""))
    except signing.BadSignature:
        return "no token signed by this site"
    except (TypeError, ValueError):
        return "the token holds no page"
    try:
        href = page_href(request, signed_href)
    except DisallowedHost:
        return "the request's Host is not allowed"
    if href is None:
        return "no URL of the page"
    verdict = page_rules_verdict(request, _path_info(href), settings)
    if verdict != PAGE_VIEW:
        return verdict  # excluded_path, bot, consent, tracking_off: the middleware's codes
    request_state(request).page = fields
    # The page's own referrer is the browser's to know, and it does not tell an image.
    queue_page_view(request, settings, href, None)
    return None


def page_href(request: HttpRequest, signed_href: str | None) -> str | None:
    """The page's URL: the ``Referer`` when it is a page of this host (it has the visitor's
    actual query, which a cache may have ignored), else the URL signed when it was rendered.

    A ``Referer`` on another host is no page of this site: a page elsewhere that embeds the
    image, or a made-up header.
    """
    referer = request_header(request, "HTTP_REFERER")
    if referer:
        parts = urlsplit(referer)
        host = request.get_host().lower()
        if parts.scheme in ("http", "https") and parts.netloc.lower() == host:
            return referer
    return signed_href


def _path_info(href: str) -> str:
    """The page's path as ``request.path_info`` has it (without the script prefix), which is
    what ``EXCLUDE_PATHS`` patterns are written against."""
    path = urlsplit(href).path or "/"
    prefix = get_script_prefix()
    return "/" + path.removeprefix(prefix) if path.startswith(prefix) else path
