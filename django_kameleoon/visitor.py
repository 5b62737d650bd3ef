"""The visitor code: read from the ``kameleoonVisitorCode`` cookie, or made anew, once a request.

The code is shared with Kameleoon's own JavaScript tag in hybrid setups, so the cookie is
readable by scripts (not HttpOnly) and carries the same name. Anything that is not a plain code
(too long, markup, spaces, non-ASCII) is replaced, never echoed back into a header or a page.
"""

from __future__ import annotations

import os
import time
from functools import lru_cache
from typing import Any, Protocol

from django.http import HttpRequest, HttpResponseBase
from django.utils.http import http_date

from django_kameleoon import useragent
from django_kameleoon.conf import Settings, get_settings
from django_kameleoon.events import VISITOR_CODE_RE

__all__ = [
    "RequestState",
    "WrappedRequest",
    "get_visitor_code",
    "has_consent",
    "http_request",
    "is_person",
    "is_tracked",
    "new_visitor_code",
    "request_header",
    "request_state",
    "user_agent",
]


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

    __slots__ = ("consent", "is_new", "page", "visitor_code")

    def __init__(self, visitor_code: str, is_new: bool) -> None:
        self.visitor_code = visitor_code
        self.is_new = is_new
        self.consent: bool | None = None
        #: PAGE fields set by ``{% kameleoon_page %}`` (title, canonicalHref, keyPageIndices).
        self.page: dict[str, Any] = {}


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
        cookie = request.COOKIES.get(get_settings().COOKIE_NAME)
        if cookie and VISITOR_CODE_RE.fullmatch(cookie):
            state = RequestState(cookie, is_new=False)
        else:
            state = RequestState(new_visitor_code(), is_new=True)
        request._kameleoon = state  # type: ignore[attr-defined]
    return state


def get_visitor_code(request: HttpRequest | WrappedRequest) -> str:
    """The visitor code of this request: the same value for the whole request.

    Takes Django REST framework's ``Request`` too, like every public function.
    """
    return request_state(http_request(request)).visitor_code


def request_header(request: HttpRequest, key: str) -> str:
    """A request header as text; some servers and test clients can leave other types."""
    value = request.META.get(key, "")
    return value if isinstance(value, str) else ""


def user_agent(request: HttpRequest) -> useragent.UserAgentInfo:
    """The request's User-Agent, parsed (cached per header), with the site's bot patterns."""
    return useragent.parse(request_header(request, "HTTP_USER_AGENT"), get_settings().site_bots)


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
    """Whether this visitor may be tracked: privacy signals first, then the site's callable."""
    state = request_state(request)
    if state.consent is None:
        state.consent = _consent(request, get_settings())
    return state.consent


def _consent(request: HttpRequest, settings: Settings) -> bool:
    meta = request.META
    if settings.RESPECT_GPC and meta.get("HTTP_SEC_GPC", "").strip() == "1":
        return False
    if settings.RESPECT_DNT and meta.get("HTTP_DNT", "").strip() == "1":
        return False
    ask = settings.consent_callable
    return True if ask is None else bool(ask(request))


@lru_cache(maxsize=2)
def _expires(now: int, max_age: int) -> str:
    """The cookie's ``expires`` date, formatted once a second rather than once a response."""
    return http_date(now + max_age)


def set_visitor_cookie(request: HttpRequest, response: HttpResponseBase) -> None:
    """Store a newly made code on the visitor's browser, as the settings describe."""
    settings = get_settings()
    secure = settings.COOKIE_SECURE
    response.set_cookie(
        settings.COOKIE_NAME,
        request_state(request).visitor_code,
        max_age=settings.COOKIE_MAX_AGE,
        expires=_expires(int(time.time()), settings.COOKIE_MAX_AGE),
        path="/",
        domain=settings.COOKIE_DOMAIN,
        secure=request.is_secure() if secure is None else secure,
        httponly=False,
        samesite=settings.COOKIE_SAMESITE,
    )
