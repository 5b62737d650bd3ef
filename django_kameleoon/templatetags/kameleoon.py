"""Template tags: ``{% load kameleoon %}``.

- ``{% kameleoon_visitor_code %}`` renders this request's visitor code.
- ``{% kameleoon_page title=... canonical_href=... key_page_indices=... %}`` fills in the PAGE
  event the middleware sends for this request; renders nothing.
- ``{% kameleoon_conversion goal_id revenue=... negative=... metadata=... key=... %}`` records
  a conversion for this request's visitor; renders nothing. With ``key=order.pk`` a reloaded
  page is the same conversion again, which the Data API drops.
- ``{% kameleoon_beacon %}`` renders the 1x1 image that counts this page's view even when a
  cache in front of Django served the page (``PAGE_VIEWS`` ``"beacon"`` or ``"auto"``); after
  ``{% kameleoon_page %}``, whose fields it carries, signed.
- ``{% kameleoon_script nonce=... %}`` renders Kameleoon's JavaScript tag for ``SITE_CODE``, for
  hybrid setups; nothing for a visitor without consent.

Every tag but ``kameleoon_script`` needs ``request`` in the context
(``django.template.context_processors.request``; a system check warns when it is missing).

Errors: a tag written wrongly (unknown or missing arguments) is a ``TemplateSyntaxError`` when
the template compiles. A wrong *value* at render time (a goal id that is not an int, a revenue
that is not a finite number) raises as the Python API does (``TypeError``/``ValueError``) when
the template engine is in debug mode, so developers see it at once; in production it is logged
as a warning and the tag renders nothing, because analytics must never turn a page into a
server error. A configuration mistake (invalid ``KAMELEOON`` settings, no request in the
context) never raises, even in debug mode: like the Python API, the tag logs it at ERROR (once
a minute) and renders what it can; ``manage.py check`` reports it.
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import urlencode

from django import template
from django.conf import settings as django_settings
from django.core.exceptions import DisallowedHost, ImproperlyConfigured
from django.http import HttpRequest
from django.urls import NoReverseMatch, reverse
from django.utils.functional import Promise
from django.utils.html import format_html

from django_kameleoon.api import track_conversion
from django_kameleoon.beacon import BEACON_URL_NAME, MARKER, TOKEN_PARAMETER, sign_page
from django_kameleoon.conf import Settings, get_settings, report_misconfiguration
from django_kameleoon.events import normalise_fields
from django_kameleoon.visitor import get_visitor_code, has_consent, request_state, use_visitor

__all__ = [
    "SCRIPT_URL",
    "kameleoon_beacon",
    "kameleoon_conversion",
    "kameleoon_page",
    "kameleoon_script",
    "kameleoon_visitor_code",
]

logger = logging.getLogger("django_kameleoon")
register = template.Library()

#: Where Kameleoon serves a project's JavaScript engine (its standard installation tag).
SCRIPT_URL = "https://{site_code}.kameleoon.eu/kameleoon.js"


@register.simple_tag(takes_context=True)
def kameleoon_visitor_code(context: template.Context) -> str:
    """This request's visitor code (``[A-Za-z0-9_-]``, so safe in HTML as it is).

    A new code is stored in the cookie by the middleware, with consent; without consent it is
    still rendered, but a fresh one is made on every request.
    """
    try:
        return get_visitor_code(_request(context, "kameleoon_visitor_code"))
    except Exception as exc:
        return _failed(context, "kameleoon_visitor_code", exc)


@register.simple_tag(takes_context=True)
def kameleoon_page(
    context: template.Context,
    *,
    title: Any = None,
    canonical_href: Any = None,
    key_page_indices: Any = None,
) -> str:
    """Set PAGE fields for this request; later tags override earlier ones field by field.

    Each value is checked and clipped now, so a mistake shows up in the template that made it
    rather than as a lost event later, and costs only its own field. ``key_page_indices`` may
    be a list of ints, one int, or a comma-separated string such as ``"3,7"`` (templates
    cannot write list literals). A ``None`` value sets nothing.
    """
    try:
        page = request_state(_request(context, "kameleoon_page")).page
    except Exception as exc:
        return _failed(context, "kameleoon_page", exc)
    given = {"title": title, "canonicalHref": canonical_href, "keyPageIndices": key_page_indices}
    for name, value in given.items():
        if value is None:
            continue
        try:
            page[name] = page_field(name, value)
        except Exception as exc:
            _failed(context, "kameleoon_page", exc)
    return ""


@register.simple_tag(takes_context=True)
def kameleoon_conversion(
    context: template.Context,
    goal_id: Any,
    *,
    revenue: Any = None,
    negative: Any = False,
    metadata: Any = None,
    key: Any = None,
) -> str:
    """Record a conversion for this request's visitor, exactly as ``track_conversion`` does."""
    try:
        request = _request(context, "kameleoon_conversion")
        track_conversion(
            request, goal_id, revenue=revenue, negative=negative, metadata=metadata, key=key
        )
    except Exception as exc:
        return _failed(context, "kameleoon_conversion", exc)
    return ""


@register.simple_tag(takes_context=True)
def kameleoon_script(context: template.Context, *, nonce: Any = None) -> str:
    """Kameleoon's asynchronous JavaScript tag, for sites that also run Kameleoon in the browser.

    Safe to mark as HTML: ``SITE_CODE`` is validated by the settings to ``[A-Za-z0-9_-]``, and
    ``format_html`` escapes it and the CSP ``nonce`` anyway. Nothing is rendered when the request
    is known and its visitor has not consented, since the script would track them; with consent,
    the middleware stores the visitor code, which the script then shares.
    """
    try:
        request = context.get("request")
        if isinstance(request, HttpRequest) and not _consents(request):
            return ""
        src = SCRIPT_URL.format(site_code=get_settings().SITE_CODE)
        if nonce:
            return format_html('<script src="{}" nonce="{}" async></script>', src, nonce)
        return format_html('<script src="{}" async></script>', src)
    except Exception as exc:
        return _failed(context, "kameleoon_script", exc)


@register.simple_tag(takes_context=True)
def kameleoon_beacon(context: template.Context) -> str:
    """A 1x1 image whose request counts this page's view (see ``django_kameleoon.beacon``).

    The same for every visitor, so the page stays cacheable: the visitor is not used, and
    consent is not asked. Nothing is rendered when another tag already learnt that this
    visitor refused (``{% kameleoon_script %}`` asks; the page is then theirs alone), nor
    while ``PAGE_VIEWS`` is ``"middleware"``. ``referrerpolicy="same-origin"``: the image's
    request tells the site which page it is on, and nothing goes to another origin.
    """
    try:
        request = _request(context, "kameleoon_beacon")
        settings = get_settings()
        state = request_state(request)
        if settings.PAGE_VIEWS == "middleware" or state.consent is False:
            return ""
        token = sign_page(_page_url(request, settings), state.page)
        src = f"{_beacon_path()}?{urlencode({TOKEN_PARAMETER: token})}"
        state.beacon = True
        return format_html(
            '<img src="{}" alt="" width="1" height="1" referrerpolicy="same-origin" {}>',
            src,
            MARKER,
        )
    except Exception as exc:
        return _failed(context, "kameleoon_beacon", exc)


def _page_url(request: HttpRequest, settings: Settings) -> str | None:
    """This page's URL, redacted (it lands in access logs in the image's query); None when
    the request's Host is not allowed (the image's ``Referer`` may still tell it)."""
    try:
        return settings.url_redactor(request.build_absolute_uri())
    except DisallowedHost:
        return None


def _beacon_path() -> str:
    try:
        return reverse(BEACON_URL_NAME)
    except NoReverseMatch:
        raise ImproperlyConfigured(
            "{% kameleoon_beacon %} needs the beacon's URL: add "
            'path("kameleoon/", include("django_kameleoon.urls")) to your URLconf'
        ) from None


def _consents(request: HttpRequest) -> bool:
    """The visitor's consent, which decides what ``kameleoon_script`` renders: the page is then
    this visitor's (``visitor.use_visitor``), since a cached copy would carry one visitor's
    decision to every other."""
    use_visitor(request)
    return has_consent(request)


def page_field(name: str, value: Any) -> Any:
    """One tag argument as the checked, clipped PAGE field; raises on a wrong type."""
    value = _indices(value) if name == "keyPageIndices" else _text(value)
    return normalise_fields("PAGE", {name: value}, partial=True)[name]


def _text(value: Any) -> Any:
    """Lazy translations (``gettext_lazy``) are text too; anything else is checked as given."""
    return str(value) if isinstance(value, Promise) else value


def _indices(value: Any) -> Any:
    """``"3,7"`` and ``3`` become ``[3, 7]`` and ``[3]``; anything else is checked as given."""
    if isinstance(value, str | Promise):
        return [int(part) for part in str(value).split(",") if part.strip()]
    if isinstance(value, int) and not isinstance(value, bool):
        return [value]
    return value


def _request(context: template.Context, tag: str) -> HttpRequest:
    request = context.get("request")
    if not isinstance(request, HttpRequest):
        raise ImproperlyConfigured(
            f"{{% {tag} %}} needs the request in the template context: add "
            "'django.template.context_processors.request' to the context processors, "
            "or render with a request"
        )
    return request


def _failed(context: template.Context, tag: str, exc: Exception) -> str:
    """Render nothing: log a configuration mistake (never raised); raise a wrong value in debug
    mode, else log it.

    A value error is logged by its type only: it can quote its value, and template values
    often come from visitors. The full message goes to DEBUG.
    """
    if isinstance(exc, ImproperlyConfigured):
        report_misconfiguration(exc)
        return ""
    if _debug(context):
        raise exc
    logger.warning("Kameleoon: {%% %s %%} failed and rendered nothing: %s", tag, type(exc).__name__)
    logger.debug("Kameleoon: {%% %s %%} error", tag, exc_info=True)
    return ""


def _debug(context: template.Context) -> bool:
    template_ = getattr(context, "template", None)
    engine = getattr(template_, "engine", None)
    return bool(getattr(engine, "debug", django_settings.DEBUG))
