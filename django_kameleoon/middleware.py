"""``KameleoonMiddleware``: turns each page a person views into STATICDATA and PAGE events.

Pages that ``{% kameleoon_beacon %}`` counts (``PAGE_VIEWS``, see ``beacon``) are left to the
beacon view, which makes their events with this module's :func:`queue_page_view`.

The middleware works on the way out, once the response is known, because only then can it
tell a page view (a GET answered 2xx with HTML) from everything else. Its work is pure CPU
(a few string checks, a cached User-Agent lookup) plus one append to the backend's queue, so it
runs inline in both modes: no ``sync_to_async`` thread hop, which would cost more than the work.
The one exception is a site's own ``CONSENT`` callable under ASGI, which may use the ORM.

Nothing here may break a response: each step is wrapped so that any unexpected error is
logged (without visitor data) and the response goes out unchanged.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from functools import lru_cache
from typing import Any, cast

from asgiref.sync import iscoroutinefunction, markcoroutinefunction, sync_to_async
from django.core.exceptions import DisallowedHost, ImproperlyConfigured
from django.http import HttpRequest, HttpResponseBase

from django_kameleoon.api import queue_later
from django_kameleoon.beacon import counted_by_beacon
from django_kameleoon.caching import make_private, response_header, shared_cacheable
from django_kameleoon.conf import Settings, get_settings, report_misconfiguration
from django_kameleoon.decisions import PAGE_VIEW, is_recording, note_page_view
from django_kameleoon.pageview import (
    PageView,
    RawPageView,
    host_allowed,
    locale_language_tag,
    path_and_query,
)
from django_kameleoon.scope import SERVING, serving_request
from django_kameleoon.visitor import (
    RequestState,
    due_for_renewal,
    has_consent,
    is_person,
    request_header,
    request_state,
    set_visitor_cookie,
    user_agent,
)

__all__ = [
    "KameleoonMiddleware",
    "allowed_host",
    "asks_for_a_page",
    "full_path",
    "is_page_view",
    "locale_language_tag",
    "page_rules_verdict",
    "page_verdict",
    "page_view_verdict",
    "queue_page_view",
    "queue_raw_page_view",
    "shows_a_page",
    "store_visitor_code",
    "visitor_checks_can_wait",
    "visitor_verdict",
]

logger = logging.getLogger("django_kameleoon")

#: Content types of a page a person reads; parameters (``; charset=utf-8``) are ignored.
HTML_CONTENT_TYPES = frozenset({"text/html", "application/xhtml+xml"})

#: 2xx answers that show no page: no content, reset content, and a part of a resumed download.
NOT_PAGE_STATUSES = frozenset({204, 205, 206})

#: ``Sec-Fetch-Dest`` of a request for a page: a navigation, in a window or a frame.
PAGE_DESTINATIONS = frozenset({"document", "iframe", "frame"})

SyncGetResponse = Callable[[HttpRequest], HttpResponseBase]
AsyncGetResponse = Callable[[HttpRequest], Awaitable[HttpResponseBase]]


class KameleoonMiddleware:
    """Sync and async capable; see the module docstring and the README for what it sends."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: SyncGetResponse | AsyncGetResponse) -> None:
        self.get_response = get_response
        self.async_mode = iscoroutinefunction(get_response)
        if self.async_mode:
            # Tell Django this instance is a coroutine function, so no adapter wraps it.
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest) -> HttpResponseBase | Awaitable[HttpResponseBase]:
        if self.async_mode:
            return self.__acall__(request)
        token = SERVING.set(True)  # tracking in this request never waits for room in the queue
        try:
            response: HttpResponseBase = self.get_response(request)  # type: ignore[assignment]
            self.process(request, response, used=_code_used(request))
        finally:
            SERVING.reset(token)
        return response

    async def __acall__(self, request: HttpRequest) -> HttpResponseBase:
        with serving_request():
            return await self._acall(request)

    async def _acall(self, request: HttpRequest) -> HttpResponseBase:
        response = await cast(AsyncGetResponse, self.get_response)(request)
        used = _code_used(request)
        if _guarded(consent_needs_a_thread, request, response, used):
            # The one exception to "no thread hop": a site's CONSENT callable may use the ORM
            # (request.user, the session), which Django refuses inside the event loop. Its
            # answer is cached on the request, so process() below does not call it again.
            await sync_to_async(_guarded)(resolve_consent, request, response)
        self.process(request, response, used=used)
        return response

    def process(self, request: HttpRequest, response: HttpResponseBase, *, used: bool) -> None:
        """Track the request, then look after the visitor's cookie; never raises.

        ``used`` says whether the view used the visitor (see :func:`_code_used`). The two steps
        are guarded apart: when the backend fails, a page that rendered the code still stores
        it, so the next request's events match the page.
        """
        page_view = _guarded(track_page_view, request, response)
        if used or page_view:
            _guarded(store_visitor_code, request, response, used, page_view)


def _code_used(request: HttpRequest) -> bool:
    """Whether the view used the visitor: a conversion, a template tag, the site's own
    ``get_visitor_code()`` (``visitor.use_visitor``).
    """
    state: RequestState | None = getattr(request, "_kameleoon", None)
    return state is not None and state.used


def consent_needs_a_thread(request: HttpRequest, response: HttpResponseBase, used: bool) -> bool:
    """True when a CONSENT callable is configured and this response needs its answer."""
    settings = get_settings()
    if settings.CONSENT is None:
        return False
    return used or is_page_view(request, response, settings, consent=False)


def resolve_consent(request: HttpRequest, response: HttpResponseBase) -> bool:
    """Ask for (and cache) this visitor's consent; run in a thread by the async path.

    Asked for a bot too when its code was used: the cookie step needs the answer, and must not
    call the callable inside the event loop.
    """
    return has_consent(request)


def _guarded(step: Callable[..., bool | None], *args: Any) -> bool:
    """Run one step of tracking; log an unexpected error instead of raising it.

    A configuration mistake is logged once a minute (``conf.report_misconfiguration``), not
    on every request.
    """
    try:
        return bool(step(*args))
    except ImproperlyConfigured as exc:
        report_misconfiguration(exc)
        return False
    except Exception as exc:
        # Exception messages can quote visitor input, so only the type is logged at ERROR;
        # the traceback goes to DEBUG for whoever is investigating.
        logger.error(
            "Kameleoon: could not track a request (%s); the response was sent unchanged",
            type(exc).__name__,
        )
        logger.debug("Kameleoon: tracking error", exc_info=True)
        return False


def track_page_view(request: HttpRequest, response: HttpResponseBase) -> bool:
    """Queue STATICDATA and PAGE when the response is a page view; True when it queued one
    whose visitor it checked, the cookie step's cue (a new visitor's cookie, a renewal).

    Most page views are a returning visitor's whose cookie needs nothing: the checks of the
    visitor then wait for the sender (:func:`visitor_checks_can_wait`), and the cookie step
    has nothing to do (False). Otherwise the verdict (``PAGE_VIEW`` or why not) is made here
    and noted for the debug toolbar panel.
    """
    settings = get_settings()
    verdict = page_view_verdict(request, response, settings, visitor=False)
    if verdict == PAGE_VIEW:
        state = request_state(request)
        if visitor_checks_can_wait(request, state, settings):
            queue_raw_page_view(request, state, settings)
            return False
        verdict = visitor_verdict(request)
    if verdict == PAGE_VIEW:
        verdict = send_page_view(request, settings)
    note_page_view(verdict)
    return verdict == PAGE_VIEW


def visitor_checks_can_wait(request: HttpRequest, state: RequestState, settings: Settings) -> bool:
    """Whether a page view's checks of its visitor (a bot? consent? the Host?) can be left to
    whoever makes its events (``pageview.RawPageView``), off the request path.

    They can when the response does not depend on them: a returning visitor whose cookie is
    not due for renewal (a new visitor's cookie is set only for a person who consented), no
    ``CONSENT`` callable (the site's code, which may need the request), and no debug panel
    recording this request's verdicts.
    """
    return (
        settings.CONSENT is None
        and not state.is_new
        and not due_for_renewal(request)
        and not is_recording()
    )


def store_visitor_code(
    request: HttpRequest, response: HttpResponseBase, used: bool, page_view: bool
) -> None:
    """Keep a used visitor's response private; set a new visitor's cookie, with consent; renew
    a returning visitor's on a page view, when it is due.

    A response that carries a new visitor's cookie is made private first when caches may store
    it (see ``caching``): the cookie reaches its visitor, and no shared cache hands it on. A
    renewal can wait for a page that caches may not store, so it never makes one private.
    """
    if used:
        make_private(request, response, "its view used the visitor code (a tag, a conversion)")
    if request_state(request).is_new:
        if has_consent(request):
            if shared_cacheable(response):
                make_private(request, response, "it sets a new visitor's cookie")
            set_visitor_cookie(request, response)
    elif page_view and due_for_renewal(request) and not shared_cacheable(response):
        set_visitor_cookie(request, response)


def is_page_view(
    request: HttpRequest, response: HttpResponseBase, settings: Settings, *, consent: bool = True
) -> bool:
    """A GET that shows a page (:func:`shows_a_page`), which no beacon counts
    (``beacon.counted_by_beacon``), that :func:`page_rules_verdict` lets through (without
    consent when ``consent=False``)."""
    return page_view_verdict(request, response, settings, consent=consent) == PAGE_VIEW


def page_view_verdict(
    request: HttpRequest,
    response: HttpResponseBase,
    settings: Settings,
    *,
    consent: bool = True,
    visitor: bool = True,
) -> str:
    """``PAGE_VIEW``, or the reason code (``decisions.PAGE_VIEW_REASONS``) of the first check
    the request fails; without the checks of the visitor when ``visitor=False``.

    Only GET counts: HEAD fetches no page a person sees (link checkers, monitors), and other
    methods are form posts and API calls. Cheapest checks first.
    """
    if request.method != "GET":
        return "method"
    verdict = page_verdict(request, response)
    if verdict != PAGE_VIEW:
        return verdict
    if counted_by_beacon(request, response, settings):
        return "beacon"
    verdict = path_rules_verdict(request.path_info, settings)
    if verdict != PAGE_VIEW or not visitor:
        return verdict
    return visitor_verdict(request, consent=consent)


def page_rules_verdict(
    request: HttpRequest, path: str, settings: Settings, *, consent: bool = True
) -> str:
    """``PAGE_VIEW`` when page events are on, the path is not excluded, the client is not a
    bot and the visitor consented (unless ``consent=False``); else the reason code.

    The one set of rules of a page view, whoever counts it: the middleware, with the request's
    own path, and the beacon view, with the path of the page that carried the image.
    """
    verdict = path_rules_verdict(path, settings)
    return verdict if verdict != PAGE_VIEW else visitor_verdict(request, consent=consent)


def path_rules_verdict(path: str, settings: Settings) -> str:
    """``PAGE_VIEW`` when page events are on and ``path`` is not excluded, else why not."""
    if not (settings.TRACK_PAGES or settings.TRACK_STATICDATA):
        return "tracking_off"
    # search(), not match(): patterns mean what they say; the defaults are anchored with ^.
    if settings.exclude_paths_re.search(path):
        return "excluded_path"
    return PAGE_VIEW


def visitor_verdict(request: HttpRequest, *, consent: bool = True) -> str:
    """``PAGE_VIEW`` when the client is not a bot and the visitor consented (unless
    ``consent=False``), else ``bot`` or ``consent``. Consent comes last because a site's
    callable may query its database."""
    if not is_person(request):
        return "bot"
    return PAGE_VIEW if not consent or has_consent(request) else "consent"


def shows_a_page(request: HttpRequest, response: HttpResponseBase) -> bool:
    """An HTML page the browser shows: :func:`page_verdict` says ``PAGE_VIEW``."""
    return page_verdict(request, response) == PAGE_VIEW


def page_verdict(request: HttpRequest, response: HttpResponseBase) -> str:
    """``PAGE_VIEW`` for an HTML page the browser shows: a 2xx with an HTML body, or a 304 to a
    page request; otherwise why not (``status``, ``content_type``, ``attachment``,
    ``not_a_page_request``).

    204, 205 and 206 are 2xx that no browser shows as a page, and a body sent as an attachment
    (``Content-Disposition: attachment``, as ``FileResponse(as_attachment=True)`` sends) is
    saved, not shown. A 304 Not Modified is a revisit the browser shows from its own cache, one
    rule whoever answered it (``ConditionalGetMiddleware`` on either side of ours, or ``@etag``,
    ``@last_modified``, ``@condition`` on the view); it has no Content-Type, so the request
    says whether it was for a page (:func:`asks_for_a_page`).
    """
    status = response.status_code
    if status == 304:
        return PAGE_VIEW if asks_for_a_page(request) else "not_a_page_request"
    if not 200 <= status < 300 or status in NOT_PAGE_STATUSES:
        return "status"
    if not _is_html(response_header(response, "content-type")):
        return "content_type"
    disposition = response_header(response, "content-disposition")
    if disposition and disposition.lstrip().lower().startswith("attachment"):
        return "attachment"
    return PAGE_VIEW


@lru_cache(maxsize=64)
def _is_html(content_type: str) -> bool:
    """Whether a Content-Type is HTML's, parameters aside: a site sends few distinct ones."""
    return content_type.partition(";")[0].strip().lower() in HTML_CONTENT_TYPES


def asks_for_a_page(request: HttpRequest) -> bool:
    """Whether a browser asked for a page to show: ``Sec-Fetch-Dest`` says so where browsers
    send it (all current ones); older ones say they accept HTML, which no image, script,
    stylesheet or ``fetch()`` request does by default.
    """
    destination = request_header(request, "HTTP_SEC_FETCH_DEST")
    if destination:
        return destination.lower() in PAGE_DESTINATIONS
    accept = request_header(request, "HTTP_ACCEPT").lower()
    return any(content_type in accept for content_type in HTML_CONTENT_TYPES)


def send_page_view(request: HttpRequest, settings: Settings) -> str:
    """Queue the view of the page this request asked for, referred by its ``Referer``;
    ``PAGE_VIEW`` when queued, else why not (``host``, ``no_backend``).

    Nothing is sent when the request's Host is not allowed (``get_host`` raises
    ``DisallowedHost``): a request for a host that is not ours is no page of this site.
    """
    try:
        # What build_absolute_uri() gives for a request's own URL, without re-parsing it.
        href = f"{request.scheme}://{allowed_host(request)}{full_path(request)}"
    except DisallowedHost:
        logger.info("Kameleoon: page view not tracked: the request's Host is not allowed")
        return "host"
    referrer = request_header(request, "HTTP_REFERER") or None
    return PAGE_VIEW if queue_page_view(request, settings, href, referrer) else "no_backend"


def allowed_host(request: HttpRequest) -> str:
    """``request.get_host()``, with Django's verdict on each Host header remembered
    (``pageview.host_allowed``)."""
    host: str = request._get_raw_host()  # type: ignore[attr-defined]
    if not host_allowed(host):
        request.get_host()  # raises DisallowedHost, with Django's own message
    return host


def full_path(request: HttpRequest) -> str:
    """``request.get_full_path()`` (``pageview.path_and_query``)."""
    return path_and_query(request.path, request.META.get("QUERY_STRING", ""))


def queue_page_view(
    request: HttpRequest, settings: Settings, href: str, referrer: str | None
) -> bool:
    """Queue STATICDATA and PAGE together: one ``send`` is one lock round trip in the backend.
    False when no backend can take them (logged).

    The one place a page view is queued, for the middleware and the beacon view alike: the
    browser and language come from ``request``, the page from ``href``, ``referrer`` and what
    ``{% kameleoon_page %}`` (or the beacon's signed token) set. Only those facts are gathered
    here; the events are made from them by the backend, off the request path where it can
    (``pageview``).
    """
    state = request_state(request)
    languages = request_header(request, "HTTP_ACCEPT_LANGUAGE")
    page = _page_fields(state)
    view = PageView.tracked(
        state.visitor_code, settings, user_agent(request), languages, href, referrer, page
    )
    return queue_later(view)


def queue_raw_page_view(request: HttpRequest, state: RequestState, settings: Settings) -> bool:
    """Queue the view of the page this request asked for as its headers, its visitor checked
    when its events are made (``pageview.RawPageView``); False when no backend can take it."""
    meta = request.META
    headers = (
        meta.get("HTTP_USER_AGENT"),
        meta.get("HTTP_ACCEPT_LANGUAGE"),
        meta.get("HTTP_SEC_GPC"),
        meta.get("HTTP_DNT"),
    )
    raw_host: str = request._get_raw_host()  # type: ignore[attr-defined]
    url = (request.scheme, raw_host, request.path, meta.get("QUERY_STRING", ""))
    referrer = request_header(request, "HTTP_REFERER") or None
    page = _page_fields(state)
    return queue_later(RawPageView(state.visitor_code, settings, headers, url, referrer, page))


def _page_fields(state: RequestState) -> dict[str, Any] | None:
    """What ``{% kameleoon_page %}`` set, copied: the sender reads it later, and a streamed
    template could still add to the page."""
    return dict(state.page) if state.page else None
