"""A page view's STATICDATA and PAGE events, made from what only its request knows.

The request keeps the facts: the visitor code, the parsed User-Agent, the language tag, the
page's URL and referrer and what ``{% kameleoon_page %}`` set. Making the two events from them
(the shared field dicts, redaction, the events and their nonces) can wait: the threaded backend
queues a :class:`PageView` as it is and its sender thread makes the events when it takes them
for a batch (``BaseBackend.send_later``). There, one after another, the work costs a fraction of
what it costs on the request path among the rest of a request's work: 12 µs of the 51 that our
middleware added to a request in a real stack (issue 13, ``python -m benchmarks.profile
instack``). Every other backend makes them at once.

A returning visitor's page view can leave more to the sender (:class:`RawPageView`): the request
then keeps only its headers, and the checks of the visitor (a bot? a privacy signal? a Host of
this site?) are made with the events.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

from django.conf import settings as django_settings
from django.http.request import split_domain_port, validate_host
from django.utils.encoding import escape_uri_path, iri_to_uri

from django_kameleoon import useragent
from django_kameleoon.api import outgoing_fields
from django_kameleoon.conf import Settings
from django_kameleoon.events import FIELDS, Event, SharedFields, normalise_fields
from django_kameleoon.visitor import header_text, privacy_signal

__all__ = [
    "PageView",
    "RawPageView",
    "host_allowed",
    "locale_language_tag",
    "page_fields",
    "page_view_events",
    "path_and_query",
    "static_fields",
    "tracked_parts",
]

logger = logging.getLogger("django_kameleoon")

#: A plain BCP 47 language tag (``fr``, ``en-US``, ``zh-Hant-TW``). Anything else in
#: Accept-Language (``*``, quality junk, markup) is left out rather than sent on.
LANGUAGE_TAG_RE = re.compile(r"[A-Za-z]{1,8}(?:-[A-Za-z0-9]{1,8})*")

#: A longer tag is left out rather than clipped by ``events``, which could cut it in half.
_LANGUAGE_TAG_LIMIT = FIELDS["STATICDATA"]["localeLanguageTag"].limit or 0

#: The hosts Django allows in ``DEBUG`` when ``ALLOWED_HOSTS`` is empty (``HttpRequest.get_host``).
DEBUG_ALLOWED_HOSTS = (".localhost", "127.0.0.1", "[::1]")


class PageView:
    """One page view, its events not made yet (``events.PendingEvents``).

    ``user_agent`` is None when STATICDATA is not tracked, ``href`` when PAGE is not. Holds
    only what the request made anyway (shared, immutable values, and the page fields the view
    set), so a queued page view costs less memory than its two events would.
    """

    __slots__ = (
        "count",
        "href",
        "language",
        "page",
        "referrer",
        "settings",
        "user_agent",
        "visitor_code",
    )

    def __init__(
        self,
        visitor_code: str,
        settings: Settings,
        user_agent: useragent.UserAgentInfo | None,
        language: str | None,
        href: str | None,
        referrer: str | None,
        page: dict[str, Any] | None,
    ) -> None:
        self.visitor_code = visitor_code
        self.settings = settings
        self.user_agent = user_agent
        self.language = language
        self.href = href
        self.referrer = referrer
        self.page = page
        self.count = (user_agent is not None) + (href is not None)

    @classmethod
    def tracked(
        cls,
        visitor_code: str,
        settings: Settings,
        user_agent: useragent.UserAgentInfo,
        accept_language: str,
        href: str,
        referrer: str | None,
        page: dict[str, Any] | None,
    ) -> PageView:
        """The page view with the parts the settings track (:func:`tracked_parts`)."""
        info, language, page_href = tracked_parts(settings, user_agent, accept_language, href)
        return cls(visitor_code, settings, info, language, page_href, referrer, page)

    def build(self) -> list[Event]:
        return page_view_events(
            self.visitor_code,
            self.settings,
            self.user_agent,
            self.language,
            self.href,
            self.referrer,
            self.page,
        )

    def __repr__(self) -> str:
        return f"<PageView {self.visitor_code} {self.href!r}>"


class RawPageView:
    """A returning visitor's page view as its request's headers (``events.PendingEvents``):
    the visitor is checked when its events are made, in the sender thread.

    The middleware queues one when nothing the request sends back depends on the checks: the
    visitor's cookie needs no renewal, no ``CONSENT`` callable (the site's code, which may use
    the request) is asked, and no debug panel shows this request's verdicts. Then whether the
    client is a bot, whether it sent a privacy signal, and whether its Host is this site's
    change only what is sent to Kameleoon, and :meth:`build` decides them by the same rules
    as the request would have (``useragent.parse``, ``visitor.privacy_signal``,
    :func:`host_allowed`): a bot's page view, or one refused, makes no events. Only the
    strings the request holds anyway are kept, not the request.
    """

    __slots__ = ("count", "headers", "page", "referrer", "settings", "url", "visitor_code")

    def __init__(
        self,
        visitor_code: str,
        settings: Settings,
        headers: tuple[object, object, object, object],
        url: tuple[str | None, str, str, str],
        referrer: str | None,
        page: dict[str, Any] | None,
    ) -> None:
        self.visitor_code = visitor_code
        self.settings = settings
        #: User-Agent, Accept-Language, Sec-GPC and DNT, as ``request.META`` holds them.
        self.headers = headers
        #: The scheme, the raw Host, the path and the query string, as the request had them.
        self.url = url
        self.referrer = referrer
        self.page = page
        #: At most; a visitor the checks refuse makes none.
        self.count = settings.TRACK_STATICDATA + settings.TRACK_PAGES

    def build(self) -> list[Event]:
        """The page view's events, or none for a bot, a privacy signal or a foreign Host."""
        settings = self.settings
        agent, languages, gpc, dnt = self.headers
        info = useragent.parse(header_text(agent), settings.site_bots)
        if info.is_bot and not settings.TRACK_BOTS:
            return []
        if privacy_signal(settings, gpc, dnt) is not None:
            return []
        scheme, host, path, query = self.url
        if not host_allowed(host):
            logger.info("Kameleoon: page view not tracked: the request's Host is not allowed")
            return []
        href = f"{scheme}://{host}{path_and_query(path, query)}"
        parts = tracked_parts(settings, info, header_text(languages), href)
        return page_view_events(self.visitor_code, settings, *parts, self.referrer, self.page)

    def __repr__(self) -> str:
        return f"<RawPageView {self.visitor_code} {self.url[2]!r}>"


def tracked_parts(
    settings: Settings, user_agent: useragent.UserAgentInfo, accept_language: str, href: str
) -> tuple[useragent.UserAgentInfo | None, str | None, str | None]:
    """What a page view's events are made of, for the parts the settings track: the browser
    and the first language of ``accept_language`` for STATICDATA (``TRACK_STATICDATA``), the
    URL for PAGE (``TRACK_PAGES``); None for a part not tracked."""
    if not settings.TRACK_STATICDATA:
        return None, None, href if settings.TRACK_PAGES else None
    language = locale_language_tag(accept_language)
    return user_agent, language, href if settings.TRACK_PAGES else None


def page_view_events(
    visitor_code: str,
    settings: Settings,
    user_agent: useragent.UserAgentInfo | None,
    language: str | None,
    href: str | None,
    referrer: str | None,
    page: dict[str, Any] | None,
) -> list[Event]:
    """A page view's events: STATICDATA (unless ``user_agent`` is None) first, then PAGE
    (unless ``href`` is None), as the API expects them."""
    events: list[Event] = []
    if user_agent is not None:
        statics = static_fields(user_agent, settings.STATICDATA_VOCABULARY, language)
        events.append(Event(visitor_code, "STATICDATA", statics))
    if href is not None:
        fields = page_fields(href, referrer, page, settings)
        events.append(Event(visitor_code, "PAGE", fields))
    return events


def host_allowed(host: str) -> bool:
    """Whether Django's ``request.get_host()`` accepts the raw Host ``host``: what
    ``ALLOWED_HOSTS`` allows (in ``DEBUG`` with none, the local names).

    Django checks the header on every call, and its first step (a regex that reads IPv6
    literals and ports) is the dearest single step of a page view's URL. The verdict depends
    only on the header and ``ALLOWED_HOSTS``, so it is cached on both, in a bounded cache:
    hostile headers cannot grow it.
    """
    allowed: Sequence[str] = django_settings.ALLOWED_HOSTS
    if not allowed and django_settings.DEBUG:
        allowed = DEBUG_ALLOWED_HOSTS
    return _host_allowed(host, tuple(allowed))


@lru_cache(maxsize=64)
def _host_allowed(host: str, allowed: tuple[str, ...]) -> bool:
    domain, _port = split_domain_port(host)
    return bool(domain) and validate_host(domain, allowed)


def path_and_query(path: str, query: str) -> str:
    """``request.get_full_path()`` of a request for ``path`` with the query string ``query``,
    without quoting a path that needs no quoting (nearly all: Django's ``escape_uri_path``
    leaves them as they are, at the cost of a ``quote()``)."""
    if not _PLAIN_PATH(path):
        path = escape_uri_path(path)
    return f"{path}?{iri_to_uri(query)}" if query else path


#: A path ``escape_uri_path`` returns unchanged: the characters ``quote()`` never touches, and
#: those Django keeps safe (``/:@&+$,-_.!~*'()``).
_PLAIN_PATH = re.compile(r"[A-Za-z0-9/:@&+$,\-_.!~*'()]*").fullmatch


@lru_cache(maxsize=1024)
def locale_language_tag(accept_language: str) -> str | None:
    """The first language of an Accept-Language header, if it is a plain language tag.

    ``"fr-CH, fr;q=0.9, en;q=0.8"`` gives ``"fr-CH"``; ``"*"``, empty or malformed headers
    give None, so that nothing a client invents reaches Kameleoon's reports.
    """
    tag = accept_language.partition(",")[0].partition(";")[0].strip()
    if len(tag) > _LANGUAGE_TAG_LIMIT or not LANGUAGE_TAG_RE.fullmatch(tag):
        return None
    return tag


@lru_cache(maxsize=useragent.CACHE_SIZE)
def static_fields(
    info: useragent.UserAgentInfo, vocabulary: str, language: str | None
) -> SharedFields:
    """The STATICDATA fields of one parsed User-Agent and language tag, made (and encoded) once
    and shared by every event of the same browser and language.

    ``"kameleoon"``: ``browserIndex``, ``os`` and ``osIndex`` as Kameleoon's official SDK sends
    them (an OS outside its six is left out); ``"names"``: ua-parser's free-text families.
    Keyed on the parse result, not the header: ``useragent.parse`` keys its own cache on the
    clipped header, and a language tag is at most 35 characters
    (:func:`locale_language_tag`), so a flood of huge distinct headers cannot grow this cache past
    its bound in entries and bytes.
    """
    fields: dict[str, Any] = {"browserVersion": info.browser_version}
    if vocabulary == "kameleoon":
        fields["browserIndex"] = useragent.BROWSER_INDEX[info.kameleoon_browser]
        if info.kameleoon_os is not None:
            fields["os"] = info.kameleoon_os
            fields["osIndex"] = useragent.OS_INDEX[info.kameleoon_os]
    else:
        fields["browser"] = info.browser
        fields["os"] = info.os
    fields["deviceType"] = info.device_type
    fields["localeLanguageTag"] = language
    return SharedFields(normalise_fields("STATICDATA", fields))


def page_fields(
    href: str, referrer: str | None, page: dict[str, Any] | None, settings: Settings
) -> dict[str, Any]:
    """PAGE fields: the absolute URL, the referrer, and what ``{% kameleoon_page %}`` set.

    ``api.outgoing_fields`` redacts every URL among them by the site's rules (``REDACT_*``,
    ``KEEP_QUERY_PARAMS``): a password-reset token in a link must not end up in Kameleoon's
    reports, whether it is in the page's URL, the referrer or a canonical URL the view set.
    A page the view set nothing for shares its fields with every view of the same URL from
    the same referrer (``Settings.plain_page_fields``).
    """
    if not page:
        return settings.plain_page_fields(href, referrer)
    return outgoing_fields("PAGE", {"href": href, "referrerHref": referrer, **page}, settings)
