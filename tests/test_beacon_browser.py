"""A real headless Chromium loads pages that carry the beacon, served from caches.

The test site runs in this process on a real HTTP server (Django's own threaded WSGI server),
with its events going to the strict local Data API. Chromium is driven by tests/support.py's
``chromium()``. Each test gets a fresh browser context (its own cookies), and the browser's own
HTTP cache is off, so that every load asks the server and the caches under test answer.

Needs Debian's ``chromium`` package (``apt-get install -y chromium``); skipped, saying so, where
no Chromium can be found.
"""

from __future__ import annotations

import http.client
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from django.core.cache import cache
from django.core.handlers.wsgi import WSGIHandler
from django.core.servers.basehttp import ThreadedWSGIServer, WSGIRequestHandler
from django.test import override_settings

from django_kameleoon.testing import DataApiServer
from tests.support import (
    COOKIE,
    NEW_CODE,
    SITE_CACHE,
    Browser,
    Configure,
    Tab,
    chromium,
    delivered,
)

pytestmark = pytest.mark.slow

#: What the page tells about itself once loaded: which render it is, and whether its beacon
#: loaded as the 1x1 image.
PAGE_STATE = (
    "JSON.stringify({stamp: document.getElementById('stamp').textContent,"
    " beacon: document.querySelector('img[data-kameleoon-beacon]').naturalWidth})"
)


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Browser]:
    directory = tmp_path_factory.mktemp("chromium")
    with chromium(directory / "chromium.log", directory / "profile") as browser:
        yield browser


@pytest.fixture
def tab(browser: Browser) -> Tab:
    """A fresh context (no cookie yet), asking for French as a French visitor's browser does."""
    return browser.tab(language="fr-FR")


def load(tab: Tab, url: str) -> dict[str, Any]:
    """Load ``url`` in ``tab``: the page's state (see ``PAGE_STATE``)."""
    tab.load(url)
    state: dict[str, Any] = json.loads(tab.evaluate(PAGE_STATE))
    return state


def django_server(middleware: list[str] | None = None) -> ThreadedWSGIServer:
    """The test site on a real HTTP server in a thread (stopped by the caller)."""
    if middleware is None:
        handler = WSGIHandler()
    else:
        with override_settings(MIDDLEWARE=middleware):
            handler = WSGIHandler()  # reads MIDDLEWARE now, once
    server = ThreadedWSGIServer(("127.0.0.1", 0), QuietRequestHandler)
    server.set_app(handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


class QuietRequestHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(autouse=True)
def _empty_cache(kameleoon: Configure) -> Iterator[None]:
    cache.clear()
    yield
    cache.clear()


def url_of(server: ThreadedWSGIServer | ThreadingHTTPServer) -> str:
    host, port = server.server_address[:2]
    return f"http://{host!s}:{port}"


class CachingProxy(ThreadingHTTPServer):
    """A reverse proxy as CDNs cache: a 200 whose ``Cache-Control`` lets shared caches store it
    (``max-age``, ``s-maxage``, ``public``; not ``private``, ``no-store``, ``no-cache``) and that
    sets no cookie is kept by URL and served again without asking Django. The ``Host`` header
    goes through unchanged, as CDNs pass it."""

    daemon_threads = True

    def __init__(self, upstream: str) -> None:
        super().__init__(("127.0.0.1", 0), ProxyHandler)
        self.upstream = upstream.removeprefix("http://")
        self.stored: dict[str, tuple[int, list[tuple[str, str]], bytes]] = {}
        #: The paths Django was asked for, in order.
        self.fetched: list[str] = []
        threading.Thread(target=self.serve_forever, daemon=True).start()


HOP_BY_HOP = {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade"}


class ProxyHandler(BaseHTTPRequestHandler):
    server: CachingProxy

    def do_GET(self) -> None:
        stored = self.server.stored.get(self.path)
        if stored is None:
            stored = self.fetch()
        status, headers, body = stored
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)

    def fetch(self) -> tuple[int, list[tuple[str, str]], bytes]:
        self.server.fetched.append(self.path.partition("?")[0])
        upstream = http.client.HTTPConnection(self.server.upstream, timeout=30)
        headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
        upstream.request("GET", self.path, headers=headers)
        answer = upstream.getresponse()
        body = answer.read()
        upstream.close()
        kept = [
            (k, v)
            for k, v in answer.getheaders()
            if k.lower() not in HOP_BY_HOP and k.lower() != "content-length"
        ]
        response = (answer.status, kept, body)
        directives = {
            part.strip().partition("=")[0].lower()
            for part in answer.getheader("Cache-Control", "").split(",")
        }
        shareable = directives & {"max-age", "s-maxage", "public"} and not directives & {
            "private",
            "no-store",
            "no-cache",
        }
        if answer.status == 200 and shareable and not answer.getheader("Set-Cookie"):
            self.server.stored[self.path] = response
        return response

    def log_message(self, format: str, *args: Any) -> None:
        pass


def pages_of(data_api: DataApiServer) -> list[dict[str, Any]]:
    return [e for e in delivered(data_api) if e["eventType"] == "PAGE"]


def assert_counted_once_per_load(
    tab: Tab, data_api: DataApiServer, url: str, title: str
) -> list[dict[str, Any]]:
    """Two loads of ``url``: the second from the cache (the same render), each counted by
    exactly one PAGE with the page's URL and title, under the cookie's visitor code, which the
    second load keeps."""
    first = load(tab, url)
    code = tab.cookie(COOKIE, url)
    assert code is not None and NEW_CODE.fullmatch(code), "the beacon set the visitor's cookie"
    assert len(pages_of(data_api)) == 1
    second = load(tab, url)
    assert first["stamp"] == second["stamp"], "the second load came from the cache"
    assert first["beacon"] == second["beacon"] == 1, "the beacon showed as a 1x1 image"
    assert tab.cookie(COOKIE, url) == code, "the cookie persists across loads"
    pages = pages_of(data_api)
    assert len(pages) == 2, "exactly one PAGE per load"
    for page in pages:
        assert (page["visitorCode"], page["href"], page["title"]) == (code, url, title)
    statics = [e for e in delivered(data_api) if e["eventType"] == "STATICDATA"]
    assert {(s["localeLanguageTag"], s["deviceType"]) for s in statics} == {("fr-FR", "DESKTOP")}
    return pages


@pytest.mark.parametrize("mode", ["auto", "beacon"])
def test_a_page_from_djangos_cache_middleware_is_counted_once_per_load(
    tab: Tab, data_api: DataApiServer, kameleoon: Configure, mode: str
) -> None:
    kameleoon(PAGE_VIEWS=mode)
    server = django_server(SITE_CACHE)
    try:
        url = f"{url_of(server)}/beacon/page/?title=Cached+teapot&keys=5"
        pages = assert_counted_once_per_load(tab, data_api, url, "Cached teapot")
        assert {tuple(p["keyPageIndices"]) for p in pages} == {(5,)}
    finally:
        server.shutdown()
        server.server_close()


def test_a_page_from_a_caching_proxy_in_front_of_django_is_counted_once_per_load(
    tab: Tab, data_api: DataApiServer, kameleoon: Configure
) -> None:
    kameleoon(PAGE_VIEWS="auto")
    server = django_server()
    proxy = CachingProxy(url_of(server))
    try:
        url = f"{url_of(proxy)}/beacon/shareable/?title=Proxied+kettle"
        assert_counted_once_per_load(tab, data_api, url, "Proxied kettle")
        fetched = [path for path in proxy.fetched if path != "/favicon.ico"]
        assert fetched == ["/beacon/shareable/", "/kameleoon/b.gif", "/kameleoon/b.gif"], (
            "Django saw the page once, and each load's beacon"
        )
    finally:
        proxy.shutdown()
        proxy.server_close()
        server.shutdown()
        server.server_close()
