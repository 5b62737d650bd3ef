"""The visitor code: read from the ``kameleoonVisitorCode`` cookie, or made anew, once a request.

The code is shared with Kameleoon's own JavaScript tag in hybrid setups, so the cookie is
readable by scripts (not HttpOnly) and carries the same name. Anything that is not a plain code
(too long, markup, spaces, non-ASCII) is replaced, never echoed back into a header or a page.

Consent is asked of the site's ``CONSENT`` callable, which may use the ORM; Django refuses the
ORM in a thread that runs an event loop (an async view, and the sync code it calls), so there
the callable runs in a thread of its own (:func:`call_site_code`). A callable that fails, or a
path that names none, means no consent: the privacy-safe reading, logged.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import os
import time
from collections.abc import Callable, Container
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache
from http.cookies import Morsel
from typing import Any, Literal, Protocol, TypeVar

from django.core.exceptions import ImproperlyConfigured
from django.db import connections
from django.http import HttpRequest, HttpResponseBase
from django.utils.http import http_date

from django_kameleoon import useragent
from django_kameleoon.caching import keep_out_of_django_cache
from django_kameleoon.conf import Settings, get_settings, report_misconfiguration
from django_kameleoon.decisions import note_consent
from django_kameleoon.events import VISITOR_CODE_RE

__all__ = [
    "RequestState",
    "WrappedRequest",
    "call_site_code",
    "consent_pending",
    "due_for_renewal",
    "get_visitor_code",
    "has_consent",
    "header_text",
    "http_request",
    "is_person",
    "is_tracked",
    "new_visitor_code",
    "orm_refused_here",
    "privacy_signal",
    "renewed_cookie_name",
    "request_header",
    "request_state",
    "set_visitor_cookie",
    "use_visitor",
    "user_agent",
]

logger = logging.getLogger("django_kameleoon")

T = TypeVar("T")


class WrappedRequest(Protocol):
    """A request object that wraps Django's, as Django REST framework's ``Request`` does."""

    _request: HttpRequest


def http_request(request: HttpRequest | WrappedRequest | Any) -> HttpRequest:
    """The ``HttpRequest`` itself, also behind Django REST framework's ``Request``.

    DRF wraps the request as ``_request``; the visitor's state must live on the wrapped one,
    where the middleware finds it. Anything else is a mistake in the caller: ``TypeError``.
    """
    found = request if isinstance(request, HttpRequest) else getattr(request, "_request", None)
    if not isinstance(found, HttpRequest):
        raise TypeError(f"expected an HttpRequest or a visitor code, not {type(request).__name__}")
    return found


class RequestState:
    """What this app knows about one request, kept on the request itself."""

    __slots__ = ("beacon", "consent", "is_new", "page", "used", "visitor_code")

    def __init__(self, visitor_code: str, is_new: bool) -> None:
        self.visitor_code = visitor_code
        self.is_new = is_new
        self.consent: bool | None = None
        #: Whether the view used the visitor (see :func:`use_visitor`).
        self.used = False
        #: PAGE fields set by ``{% kameleoon_page %}`` (title, canonicalHref, keyPageIndices).
        self.page: dict[str, Any] = {}
        #: Whether ``{% kameleoon_beacon %}`` rendered its image: the beacon counts this page.
        self.beacon = False


def new_visitor_code() -> str:
    """16 characters of ``[a-z2-7]`` (within ``[a-z0-9]``): 80 random bits from the OS CSPRNG.

    Each random byte picks one of 32 letters by its low five bits: 256 is a multiple of 32,
    so every letter is equally likely.
    """
    return os.urandom(16).translate(_CODE_LETTERS).decode("ascii")


_CODE_LETTERS = bytes(b"abcdefghijklmnopqrstuvwxyz234567"[i % 32] for i in range(256))


def request_state(request: HttpRequest) -> RequestState:
    """The request's state, resolving the visitor code from the cookie on first use."""
    state: RequestState | None = getattr(request, "_kameleoon", None)
    if state is None:
        cookie = request.COOKIES.get(_cookie_name())
        if cookie and VISITOR_CODE_RE.fullmatch(cookie):
            state = RequestState(cookie, is_new=False)
        else:
            state = RequestState(new_visitor_code(), is_new=True)
        request._kameleoon = state  # type: ignore[attr-defined]
    return state


def use_visitor(request: HttpRequest) -> RequestState:
    """The request's state, marked as used by the view: a conversion, a template tag that
    renders per visitor, the site's own ``get_visitor_code()``.

    A used code is stored in the cookie (with consent), and the response is this visitor's
    alone: kept out of Django's cache now, marked private by the middleware (``caching``).
    ``{% kameleoon_page %}`` does not use the visitor: its fields are the same for everyone.
    """
    state = request_state(request)
    if not state.used:
        state.used = True
        keep_out_of_django_cache(request)
    return state


def _cookie_name() -> str:
    """``COOKIE_NAME``; Kameleoon's own name while the settings are invalid (reported), so that
    a site's code that asks for the visitor code keeps working."""
    try:
        return get_settings().COOKIE_NAME
    except ImproperlyConfigured as exc:
        report_misconfiguration(exc)
        return str(Settings.COOKIE_NAME)


def get_visitor_code(request: HttpRequest | WrappedRequest) -> str:
    """The visitor code of this request: the same value for the whole request.

    Takes Django REST framework's ``Request`` too, like every public function. The response
    is then this visitor's alone (see :func:`use_visitor`): whatever the view does with the
    code (render it, choose a variation by it) must not be served to anyone else.
    """
    return use_visitor(http_request(request)).visitor_code


def request_header(request: HttpRequest, key: str) -> str:
    """A request header as text (:func:`header_text`)."""
    return header_text(request.META.get(key))


def header_text(value: object) -> str:
    """A header's value from ``request.META`` as text: ``""`` for an absent one, and for
    another type, which some servers and test clients can leave."""
    return value if isinstance(value, str) else ""


def user_agent(request: HttpRequest) -> useragent.UserAgentInfo:
    """The request's User-Agent, parsed (cached per header), with the site's bot patterns;
    kept on the request, which asks twice (is it a person? its STATICDATA)."""
    info: useragent.UserAgentInfo | None = getattr(request, "_kameleoon_agent", None)
    if info is None:
        header = request_header(request, "HTTP_USER_AGENT")
        info = useragent.parse(header, get_settings().site_bots)
        request._kameleoon_agent = info  # type: ignore[attr-defined]
    return info


def is_person(request: HttpRequest) -> bool:
    """False for a bot, a script or a monitor (an empty User-Agent too), unless ``TRACK_BOTS``."""
    return get_settings().TRACK_BOTS or not user_agent(request).is_bot


def is_tracked(request: HttpRequest) -> bool:
    """Whether events may be recorded for this request: a person who consented.

    The one check of every event made for a request: the middleware's page views, and
    ``track()``/``track_conversion()`` (so the template tags and ``GOALS`` too). A crawler
    that opens a thank-you page, or a script that posts to a view recording a conversion,
    records nothing. The bot check comes first: it is cached, a ``CONSENT`` callable may not be.
    """
    return is_person(request) and has_consent(request)


def has_consent(request: HttpRequest) -> bool:
    """Whether this visitor may be tracked: privacy signals first, then the site's callable.

    Raises ``ImproperlyConfigured`` only while the settings are invalid.
    """
    state = request_state(request)
    if state.consent is None:
        state.consent = _consent(request, get_settings())
    return state.consent


def consent_pending(request: HttpRequest) -> bool:
    """Whether :func:`has_consent` would call the site's ``CONSENT`` callable (which may use
    the ORM): async callers then ask in a thread first. False while the settings are invalid
    (the caller meets, and reports, that next)."""
    state: RequestState | None = getattr(request, "_kameleoon", None)
    if state is not None and state.consent is not None:
        return False
    try:
        return get_settings().CONSENT is not None
    except ImproperlyConfigured:
        return False


def _consent(request: HttpRequest, settings: Settings) -> bool:
    """The decision, noted with its reason (``decisions.CONSENT_REASONS``) for the panel."""
    meta = request.META
    signal = privacy_signal(settings, meta.get("HTTP_SEC_GPC"), meta.get("HTTP_DNT"))
    if signal is not None:
        return note_consent(False, signal)
    ask = settings.consent_callable
    return note_consent(True, "default") if ask is None else _ask_site(ask, request)


def privacy_signal(settings: Settings, gpc: object, dnt: object) -> str | None:
    """``"gpc"`` or ``"dnt"`` when the browser asked not to be tracked (``Sec-GPC: 1``,
    ``DNT: 1``, the ``META`` values given) and the settings respect it, else None."""
    if settings.RESPECT_GPC and header_text(gpc).strip() == "1":
        return "gpc"
    if settings.RESPECT_DNT and header_text(dnt).strip() == "1":
        return "dnt"
    return None


def _ask_site(ask: Callable[[HttpRequest], Any], request: HttpRequest) -> bool:
    """The site's answer; no consent (logged) when its callable fails or cannot be imported.

    Only the exception's type is logged for a failing callable, since its message may quote
    the visitor; the traceback goes to DEBUG.
    """
    try:
        return note_consent(bool(call_site_code(ask, request)), "callable")
    except ImproperlyConfigured as exc:
        report_misconfiguration(f"{exc}; every visitor is treated as not consenting")
    except Exception as exc:
        report_misconfiguration(
            f"could not track a visitor: the CONSENT callable raised {type(exc).__name__}; "
            "such visitors are treated as not consenting"
        )
        logger.debug("Kameleoon: CONSENT callable error", exc_info=True)
    return note_consent(False, "callable_failed")


def orm_refused_here() -> bool:
    """Whether Django's ORM would raise ``SynchronousOnlyOperation`` in this thread: an event
    loop runs in it and ``DJANGO_ALLOW_ASYNC_UNSAFE`` is not set (``django.utils.asyncio``'s
    own test). The loop first: ``_get_running_loop`` (public in ``asyncio.events``) answers
    without raising, and this runs on every request that asks a ``CONSENT`` callable."""
    return asyncio._get_running_loop() is not None and not os.environ.get(
        "DJANGO_ALLOW_ASYNC_UNSAFE"
    )


def call_site_code(function: Callable[..., T], *args: Any) -> T:
    """Call a site's own synchronous code (the ``CONSENT`` callable, ``conversion`` receivers),
    which may use the ORM, from wherever the public functions were called.

    Where the ORM is refused (:func:`orm_refused_here`: a sync function called from an async
    view) it runs in a thread of its own, with the caller's context variables, and the caller
    waits, as it would for any sync code it calls. The thread's database connections are
    closed at its end, as at the end of a request. Elsewhere it is a plain call.
    """
    if not orm_refused_here():
        return function(*args)
    context = contextvars.copy_context()
    with ThreadPoolExecutor(1, thread_name_prefix="kameleoon-site-code") as pool:
        return pool.submit(context.run, _closing_connections, function, *args).result()


def _closing_connections(function: Callable[..., T], *args: Any) -> T:
    try:
        return function(*args)
    finally:
        connections.close_all()


def renewed_cookie_name(settings: Settings) -> str:
    """The cookie that says the visitor cookie was set or renewed in the last
    ``COOKIE_REFRESH_INTERVAL`` seconds: browsers do not send a cookie's expiry back, and the
    visitor cookie's value must stay the bare code, which Kameleoon's JavaScript reads."""
    return settings.COOKIE_NAME + "Refreshed"


def due_for_renewal(request: HttpRequest) -> bool:
    """Whether a returning visitor's cookie should be set again, to push its expiry back."""
    settings = get_settings()
    interval_on = settings.COOKIE_REFRESH_INTERVAL is not None
    return interval_on and renewed_cookie_name(settings) not in request.COOKIES


def set_visitor_cookie(request: HttpRequest, response: HttpResponseBase) -> None:
    """Store the visitor code on the visitor's browser for ``COOKIE_MAX_AGE`` from now, as the
    settings describe, with the cookie that dates it (``renewed_cookie_name``)."""
    settings = get_settings()
    secure = settings.COOKIE_SECURE
    if secure is None:
        secure = request.is_secure()  # once for both cookies: Django reads its settings for it
    _set_cookie(
        response,
        settings,
        settings.COOKIE_NAME,
        request_state(request).visitor_code,
        settings.COOKIE_MAX_AGE,
        secure=secure,
        httponly=False,  # Kameleoon's JavaScript reads it
    )
    if settings.COOKIE_REFRESH_INTERVAL is not None:
        name = renewed_cookie_name(settings)
        interval = settings.COOKIE_REFRESH_INTERVAL
        _set_cookie(response, settings, name, "1", interval, secure=secure, httponly=True)


def _set_cookie(
    response: HttpResponseBase,
    settings: Settings,
    name: str,
    value: str,
    max_age: int,
    *,
    secure: bool,
    httponly: bool,
) -> None:
    """Set ``name`` as Django's ``set_cookie`` would, from a copy of :func:`_cookie_template`.

    ``value`` is a visitor code or ``"1"``, which need no quoting, so the copy only takes it.
    """
    template = _cookie_template(
        name,
        max_age,
        int(time.time()),
        settings.COOKIE_DOMAIN,
        secure,
        httponly,
        settings.COOKIE_SAMESITE,
    )
    # What SimpleCookie.__setitem__ does with a Morsel, without its Python-level call.
    dict.__setitem__(response.cookies, name, _PreparedMorsel.of(template, value))


class _PreparedMorsel(Morsel[str]):
    """A copy of a cookie template whose ``Set-Cookie`` line is written once, with the template.

    Python writes a cookie's line anew, attribute by attribute, on every response (some 300
    bytecode instructions a cookie); this one joins its value to the template's attributes as
    long as they are still the template's, and writes the line as Python does once anything
    (another middleware, a view) changed one of them.
    """

    #: The template and its attributes as written; absent from a copy that was unpickled.
    _template: Morsel[str] | None = None
    _attributes = ""

    @staticmethod
    def prepare(template: Morsel[str]) -> Morsel[str]:
        """Write ``template``'s attributes once, for its copies."""
        prefix = f"{template.key}={template.coded_value}"
        attributes = template.OutputString()[len(prefix) :]
        template.__dict__.update(_template=template, _attributes=attributes)
        return template

    @classmethod
    def of(cls, template: Morsel[str], value: str) -> _PreparedMorsel:
        """A copy of a prepared ``template`` with ``value``, which needs no quoting (a visitor
        code or ``"1"``). Made without ``Morsel.__init__``: it would set every attribute to
        ``""`` only for the template's to replace them."""
        morsel = cls.__new__(cls)
        dict.update(morsel, template)
        morsel.__dict__.update(template.__dict__, _value=value, _coded_value=value)
        return morsel

    def OutputString(self, attrs: Container[str] | None = None) -> str:
        template = self._template
        if attrs is None and template is not None and dict.__eq__(self, template):
            return f"{self.key}={self.coded_value}{self._attributes}"
        return super().OutputString(attrs)


@lru_cache(maxsize=8)
def _cookie_template(
    name: str,
    max_age: int,
    now: int,
    domain: str | None,
    secure: bool,
    httponly: bool,
    samesite: Literal["Lax", "Strict", "None"] | None,
) -> Morsel[str]:
    """The cookie's attributes as Django's own ``set_cookie`` writes them, made once a second
    (its ``expires`` date changes with the second) rather than on every response that sets it,
    one of the dearest steps of tracking a new visitor's page view. Copied, never handed out."""
    response = HttpResponseBase()
    response.set_cookie(
        name,
        "",
        max_age=max_age,
        expires=http_date(now + max_age),
        path="/",
        domain=domain,
        secure=secure,
        httponly=httponly,
        samesite=samesite,
    )
    return _PreparedMorsel.prepare(response.cookies[name])
