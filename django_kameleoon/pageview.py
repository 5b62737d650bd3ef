"""A page view's STATICDATA and PAGE events, made from what only its request knows.

The request keeps the facts: the visitor code, the parsed User-Agent, the language tag, the
page's URL and referrer and what ``{% kameleoon_page %}`` set. Making the two events from them
(the shared field dicts, redaction, the events and their nonces) can wait: the threaded backend
queues a :class:`PageView` as it is and its sender thread makes the events when it takes them
for a batch (``BaseBackend.send_later``). There, one after another, the work costs a fraction of
what it costs on the request path among the rest of a request's work: 12 µs of the 51 that our
middleware added to a request in a real stack (issue 13, ``python -m benchmarks.profile
instack``). Every other backend makes them at once.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from django_kameleoon import useragent
from django_kameleoon.api import outgoing_fields
from django_kameleoon.conf import Settings
from django_kameleoon.events import Event, SharedFields, normalise_fields

__all__ = ["PageView", "page_fields", "static_fields"]


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

    def build(self) -> list[Event]:
        """The page view's events: STATICDATA first, then PAGE, as the API expects them."""
        code = self.visitor_code
        events: list[Event] = []
        if self.user_agent is not None:
            vocabulary = self.settings.STATICDATA_VOCABULARY
            statics = static_fields(self.user_agent, vocabulary, self.language)
            events.append(Event(code, "STATICDATA", statics))
        if self.href is not None:
            fields = page_fields(self.href, self.referrer, self.page, self.settings)
            events.append(Event(code, "PAGE", fields))
        return events

    def __repr__(self) -> str:
        return f"<PageView {self.visitor_code} {self.href!r}>"


@lru_cache(maxsize=useragent.CACHE_SIZE)
def static_fields(
    info: useragent.UserAgentInfo, vocabulary: str, language: str | None
) -> SharedFields:
    """The STATICDATA fields of one parsed User-Agent and language tag, made (and encoded) once
    and shared by every event of the same browser and language.

    ``"kameleoon"``: ``browserIndex``, ``os`` and ``osIndex`` as Kameleoon's official SDK sends
    them (an OS outside its six is left out); ``"names"``: ua-parser's free-text families.
    Keyed on the parse result, not the header: ``useragent.parse`` keys its own cache on the
    clipped header, and a language tag is at most 35 characters (the middleware's
    ``locale_language_tag``), so a flood of huge distinct headers cannot grow this cache past
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
