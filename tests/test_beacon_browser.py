"""A real headless Chromium loads pages that carry the beacon, served from caches.

The test site runs in this process on a real HTTP server (Django's own threaded WSGI server),
with its events going to the strict local Data API. Chromium is driven over the DevTools
protocol on ``--remote-debugging-pipe`` (NUL-separated JSON on its fds 3 and 4): no driver
and no Python package beyond the standard library. Each test gets a fresh browser context
(its own cookies), and the browser's own HTTP cache is off, so that every load asks the server
and the caches under test answer.

Needs Debian's ``chromium`` package (``apt-get install -y chromium``); skipped, saying so, where
no Chromium can be found.
"""

from __future__ import annotations

import fcntl
import http.client
import json
import os
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from django.core.cache import cache
from django.core.handlers.wsgi import WSGIHandler
from django.core.servers.basehttp import ThreadedWSGIServer, WSGIRequestHandler
from django.test import override_settings

from django_kameleoon.testing import DataApiServer
from tests.support import CHROME, COOKIE, NEW_CODE, SITE_CACHE, Configure, delivered

CHROMIUM = next(
    filter(None, map(shutil.which, ("chromium", "chromium-browser", "google-chrome"))), None
)
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        CHROMIUM is None,
        reason="no Chromium found (chromium, chromium-browser or google-chrome in PATH): "
        "install Debian's chromium package to run the real-browser beacon tests",
    ),
]

FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--remote-debugging-pipe",
]
TIMEOUT = 30.0
#: What the page tells about itself once loaded: which render it is, and whether its beacon
#: loaded as the 1x1 image.
PAGE_STATE = (
    "JSON.stringify({stamp: document.getElementById('stamp').textContent,"
    " beacon: document.querySelector('img[data-kameleoon-beacon]').naturalWidth})"
)


class DevTools:
    """One Chromium process, spoken to over ``--remote-debugging-pipe``."""

    def __init__(self, executable: str, profile: Path, log: Path) -> None:
        to_browser, self._send_fd = os.pipe()
        self._receive_fd, from_browser = os.pipe()
        # Far from 3 and 4, so that the redirections cannot overwrite one another (bash: dash
        # takes only one-digit fds).
        high = [fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10) for fd in (to_browser, from_browser)]
        os.close(to_browser)
        os.close(from_browser)
        script = f'exec "$0" "$@" 3<&{high[0]} 4>&{high[1]} {high[0]}<&- {high[1]}>&-'
        with log.open("wb") as out:
            self.process = subprocess.Popen(
                ["bash", "-c", script, executable, *FLAGS, f"--user-data-dir={profile}"],
                pass_fds=high,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        for fd in high:
            os.close(fd)
        self._ids = iter(range(1, 1 << 30))
        self._messages: list[dict[str, Any]] = []
        self._arrived = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        buffer = b""
        while chunk := os.read(self._receive_fd, 1 << 16):
            buffer += chunk
            *complete, buffer = buffer.split(b"\0")
            with self._arrived:
                self._messages.extend(json.loads(message) for message in complete)
                self._arrived.notify_all()

    def _wait_for(self, matches: Any, what: str) -> dict[str, Any]:
        deadline = time.monotonic() + TIMEOUT
        with self._arrived:
            while True:
                for message in self._messages:
                    if matches(message):
                        self._messages.remove(message)
                        return message
                left = deadline - time.monotonic()
                if left <= 0 or self.process.poll() is not None:
                    raise AssertionError(f"Chromium did not send {what} within {TIMEOUT} s")
                self._arrived.wait(min(left, 0.5))

    def call(self, method: str, session: str | None = None, **params: Any) -> dict[str, Any]:
        """Send one command and return its result; a DevTools error fails the test."""
        number = next(self._ids)
        message: dict[str, Any] = {"id": number, "method": method, "params": params}
        if session:
            message["sessionId"] = session
        os.write(self._send_fd, json.dumps(message).encode() + b"\0")
        answer = self._wait_for(lambda m: m.get("id") == number, f"an answer to {method}")
        assert "error" not in answer, f"{method}: {answer['error']}"
        result: dict[str, Any] = answer["result"]
        return result

    def forget_event(self, method: str, session: str) -> None:
        with self._arrived:
            self._messages = [
                m
                for m in self._messages
                if not (m.get("method") == method and m.get("sessionId") == session)
            ]

    def wait_event(self, method: str, session: str) -> dict[str, Any]:
        return self._wait_for(
            lambda m: m.get("method") == method and m.get("sessionId") == session, method
        )

    def close(self) -> None:
        if self.process.poll() is None:
            try:
                self.call("Browser.close")
                self.process.wait(TIMEOUT)
            except (AssertionError, OSError, subprocess.TimeoutExpired):
                self.process.kill()
                self.process.wait()
        os.close(self._send_fd)
        self._reader.join(TIMEOUT)  # the pipe's end: Chromium and its children are gone
        if not self._reader.is_alive():
            os.close(self._receive_fd)


class Tab:
    """A page in a browser context of its own: fresh cookies, no HTTP cache, a desktop Chrome's
    User-Agent (headless Chromium says it is headless, which is a bot) and French."""

    def __init__(self, browser: DevTools) -> None:
        self.browser = browser
        context = browser.call("Target.createBrowserContext")["browserContextId"]
        target = browser.call("Target.createTarget", url="about:blank", browserContextId=context)[
            "targetId"
        ]
        self.session: str = browser.call("Target.attachToTarget", targetId=target, flatten=True)[
            "sessionId"
        ]
        for method, params in [
            ("Page.enable", {}),
            ("Network.enable", {}),
            ("Network.setCacheDisabled", {"cacheDisabled": True}),
            ("Network.setUserAgentOverride", {"userAgent": CHROME, "acceptLanguage": "fr-FR"}),
        ]:
            browser.call(method, self.session, **params)

    def load(self, url: str) -> dict[str, Any]:
        """Navigate to ``url`` and wait for its load event (images included): the page's state."""
        self.browser.forget_event("Page.loadEventFired", self.session)
        navigated = self.browser.call("Page.navigate", self.session, url=url)
        assert "errorText" not in navigated, navigated
        self.browser.wait_event("Page.loadEventFired", self.session)
        value = self.browser.call(
            "Runtime.evaluate", self.session, expression=PAGE_STATE, returnByValue=True
        )["result"]["value"]
        state: dict[str, Any] = json.loads(value)
        return state

    def cookie(self, url: str) -> str | None:
        cookies = self.browser.call("Network.getCookies", self.session, urls=[url])["cookies"]
        return next((c["value"] for c in cookies if c["name"] == COOKIE), None)


@pytest.fixture(scope="module")
def chromium() -> Iterator[DevTools]:
    assert CHROMIUM is not None
    with tempfile.TemporaryDirectory(prefix="kameleoon-chromium-") as directory:
        profile = Path(directory) / "profile"
        browser = DevTools(CHROMIUM, profile, Path(directory) / "chromium.log")
        try:
            browser.call("Browser.getVersion")
            yield browser
        finally:
            browser.close()


@pytest.fixture
def tab(chromium: DevTools) -> Tab:
    return Tab(chromium)


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
        upstream = http.client.HTTPConnection(self.server.upstream, timeout=TIMEOUT)
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
    first = tab.load(url)
    code = tab.cookie(url)
    assert code is not None and NEW_CODE.fullmatch(code), "the beacon set the visitor's cookie"
    assert len(pages_of(data_api)) == 1
    second = tab.load(url)
    assert first["stamp"] == second["stamp"], "the second load came from the cache"
    assert first["beacon"] == second["beacon"] == 1, "the beacon showed as a 1x1 image"
    assert tab.cookie(url) == code, "the cookie persists across loads"
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
