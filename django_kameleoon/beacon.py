"""The page-view beacon: what a page signs into its ``{% kameleoon_beacon %}`` image, and who
counts a page view (``PAGE_VIEWS``).

A page served by a cache in front of Django (a CDN, a reverse proxy) never reaches the
middleware; the image it carries does, since it is never cached (``Cache-Control: no-store``).
The image's query holds what the page knew when it was rendered (its URL, title, canonical URL
and key page indices), signed with Django's ``signing`` under a salt of its own: the page is the
same for every visitor, so it carries nothing of any one visitor, and nobody can forge what it
says. The visitor, their browser and their consent come from the image's own request.

A page is counted once. In ``"auto"`` mode the middleware leaves a page to its beacon when the
tag rendered in this request (``RequestState.beacon``) or, for a copy served by Django's cache
without running the view, when the HTML carries the image's :data:`MARKER` attribute. Pages a
cache in front of Django serves never reach the middleware, so they are counted once anyway.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.core import signing
from django.http import HttpRequest, HttpResponseBase

from django_kameleoon.conf import Settings
from django_kameleoon.events import normalise_fields
from django_kameleoon.visitor import RequestState

__all__ = [
    "BEACON_URL_NAME",
    "MARKER",
    "MAX_TOKEN_LENGTH",
    "TOKEN_PARAMETER",
    "TRANSPARENT_GIF",
    "counted_by_beacon",
    "read_token",
    "sign_page",
]

#: The beacon view's URL name, as ``include("django_kameleoon.urls")`` mounts it.
BEACON_URL_NAME = "django_kameleoon:beacon"
#: The attribute by which a page's HTML says that its beacon counts it (``"auto"`` mode).
MARKER = "data-kameleoon-beacon"
_MARKER_BYTES = MARKER.encode("ascii")

#: A transparent 1x1 GIF: the smallest image every browser shows (43 bytes).
TRANSPARENT_GIF = (
    b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff!\xf9\x04\x01\x00\x00\x00\x00"
    b",\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;"
)

#: The image URL's query parameter that carries the page's signed token.
TOKEN_PARAMETER = "p"
#: The ``signing`` salt: the same ``SECRET_KEY`` signs sessions, passwords resets and more.
_SALT = "django_kameleoon.beacon"
#: A longer token is refused before its signature is computed; a page's own is well within it
#: (a 2,048-character URL twice, a title, indices, compressed).
MAX_TOKEN_LENGTH = 8192
#: Short keys keep the image's URL short: the page's URL at render time, then PAGE fields.
_HREF = "h"
_FIELDS = {"t": "title", "c": "canonicalHref", "k": "keyPageIndices"}


def sign_page(href: str | None, page: Mapping[str, Any]) -> str:
    """The signed token of a page: its (redacted) URL and the PAGE fields its tags set."""
    data: dict[str, Any] = {short: page[name] for short, name in _FIELDS.items() if name in page}
    if href:
        data[_HREF] = href
    # No timestamp (``signing.dumps`` adds one): a cached page's token must stay valid as long
    # as the page is served, and the same page renders the same image every time.
    return signing.Signer(salt=_SALT).sign_object(data, compress=True)


def read_token(token: str) -> tuple[str | None, dict[str, Any]]:
    """The page's URL and PAGE fields from a token :func:`sign_page` made.

    Raises ``signing.BadSignature`` for a token this site did not sign (or signed with a key it
    no longer has), ``ValueError``/``TypeError`` for one whose content is not a page's.
    """
    if len(token) > MAX_TOKEN_LENGTH:
        raise signing.BadSignature("the token is longer than any page signs")
    data = signing.Signer(salt=_SALT).unsign_object(token)
    if not isinstance(data, dict):
        raise TypeError("the token holds no page")
    href = data.get(_HREF)
    if href is not None and not isinstance(href, str):
        raise TypeError("the token's URL is not text")
    fields = {name: data[short] for short, name in _FIELDS.items() if short in data}
    return href, normalise_fields("PAGE", fields, partial=True)


def counted_by_beacon(request: HttpRequest, response: HttpResponseBase, settings: Settings) -> bool:
    """Whether this page's view is the beacon's to count, not the middleware's.

    ``"auto"``: when the tag rendered in this request, or the HTML carries :data:`MARKER` (a
    copy from Django's cache, a ``{% cache %}`` fragment). A streamed body cannot be searched
    without consuming it, and a 304 has none: both are the middleware's unless the tag ran.
    """
    if settings.PAGE_VIEWS == "middleware":
        return False
    if settings.PAGE_VIEWS == "beacon":
        return True
    state: RequestState | None = getattr(request, "_kameleoon", None)
    if state is not None and state.beacon:
        return True
    return not response.streaming and _MARKER_BYTES in getattr(response, "content", b"")
