"""The peer page-view middleware: what a Django team writes with user-agents and the official SDK.

It follows the SDK's documentation: ``get_visitor_code`` from ``request.COOKIES``, the visit's
data with ``add_data`` (``Browser``, ``Device``, ``PageView``), ``flush(visitor_code)`` so the
tracking thread sends it on its next round, and the ``kameleoonVisitorCode`` cookie set for a
new visitor. The device and browser come from ``user_agents.parse``, bots are skipped, and only
a GET answered 2xx with HTML counts, like ours. Like ours, it is async capable (the SDK's calls
only touch memory), so under ASGI it runs inline rather than through a thread hop.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import user_agents
from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.http import HttpRequest, HttpResponse
from kameleoon import KameleoonClient
from kameleoon.data import Browser, BrowserType, Device, DeviceType, PageView

__all__ = ["SdkPageViewMiddleware", "client"]

#: Set by the benchmark before the handler is built: the SDK client pointed at the sink.
client: KameleoonClient | None = None

COOKIE = "kameleoonVisitorCode"
MAX_AGE = 380 * 24 * 3600


def _browser_type(family: str) -> BrowserType:
    family = family.lower()
    if "chrome" in family or "chromium" in family:
        return BrowserType.CHROME
    if "firefox" in family:
        return BrowserType.FIREFOX
    if "safari" in family:
        return BrowserType.SAFARI
    if "opera" in family:
        return BrowserType.OPERA
    if family == "ie" or "internet explorer" in family:
        return BrowserType.INTERNET_EXPLORER
    return BrowserType.OTHER


def _version(version: tuple[Any, ...]) -> float | None:
    if version and isinstance(version[0], int):
        minor = version[1] if len(version) > 1 and isinstance(version[1], int) else 0
        return float(f"{version[0]}.{minor}")
    return None


class SdkPageViewMiddleware:
    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[[HttpRequest], Any]) -> None:
        self.get_response = get_response
        if client is None:
            raise RuntimeError("set benchmarks.peer_middleware.client first")
        self.client = client
        self.async_mode = iscoroutinefunction(get_response)
        if self.async_mode:
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest) -> Any:
        if self.async_mode:
            return self.__acall__(request)
        visitor_code = self.client.get_visitor_code(cookies_readonly=request.COOKIES)
        response = self.get_response(request)
        self.track(request, response, visitor_code)
        return response

    async def __acall__(self, request: HttpRequest) -> HttpResponse:
        visitor_code = self.client.get_visitor_code(cookies_readonly=request.COOKIES)
        response = await self.get_response(request)
        self.track(request, response, visitor_code)
        return response

    def track(self, request: HttpRequest, response: HttpResponse, visitor_code: str) -> None:
        content_type = response.get("Content-Type", "")
        if (
            request.method == "GET"
            and 200 <= response.status_code < 300
            and content_type.startswith("text/html")
        ):
            ua = user_agents.parse(request.META.get("HTTP_USER_AGENT", ""))
            if not ua.is_bot:
                if ua.is_tablet:
                    device = DeviceType.TABLET
                elif ua.is_mobile:
                    device = DeviceType.PHONE
                else:
                    device = DeviceType.DESKTOP
                self.client.add_data(
                    visitor_code,
                    Browser(_browser_type(ua.browser.family), _version(ua.browser.version)),
                    Device(device),
                    PageView(request.build_absolute_uri(), None),
                )
                self.client.flush(visitor_code)
        if request.COOKIES.get(COOKIE) != visitor_code:
            response.set_cookie(COOKIE, visitor_code, max_age=MAX_AGE, samesite="Lax")
