"""``make demo``: the example shop, real visitors over real HTTP, and what Kameleoon would get.

Starts the local collector (the strict Data API stand-in) in this process and the example shop
under gunicorn (``runserver`` if gunicorn is missing) as a child process pointed at it, plays a
scripted set of visits with ``requests`` (loading each page's beacon image, as a browser
does), stops the shop with SIGTERM so that its workers deliver
what they still hold at exit, and prints what the collector received. Exits 0 only when
STATICDATA, PAGE and CONVERSION events arrived, each visitor's events are what its visits should
produce, the bot sent nothing, and no rule of the Data API was broken; otherwise prints why and
exits 1. Product pages are cached by the shop (``cache_page``) and counted by their beacon:
the demo says which loads Django's cache served, each counted once. Every wait has a
deadline; nothing sleeps a fixed time.
"""

from __future__ import annotations

import html
import importlib.util
import io
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import IO

import requests

from django_kameleoon.collector import (
    Collector,
    VisitorSummary,
    count_by_type,
    format_event,
    format_table,
    summarize_visitors,
    visitor_table,
)

HERE = Path(__file__).resolve().parent
SITE_CODE = "demoshop01"
START_TIMEOUT = 30.0
STOP_TIMEOUT = 30.0
REQUEST_TIMEOUT = 10.0
VISITOR_CODE_RE = re.compile(r'<code id="visitor-code">([A-Za-z0-9_-]+)</code>')
CSRF_RE = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')
BEACON_RE = re.compile(r'<img src="([^"]+)"[^>]* data-kameleoon-beacon')
RENDERED_RE = re.compile(r'<span id="rendered">([^<]+)</span>')
COOKIE_NAME = "kameleoonVisitorCode"

# Prices of the catalogue, to know what revenue the purchase must report.
TEAPOT_PRICE = Decimal("29.90")
PURCHASE_QUANTITY = 2
PURCHASE_GOAL = 101


# --------------------------------------------------------------------------------------------
# Who visits, and what they do
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Step:
    """One request; ``page`` says whether it is a page view (HTML, 2xx, GET), i.e. one PAGE."""

    method: str
    path: str
    page: bool = True
    data: dict[str, str] | None = None


@dataclass
class Persona:
    label: str
    user_agent: str
    language: str
    device: str | None  # the deviceType Kameleoon should get; None for a bot
    steps: list[Step]
    cookie: str | None = None  # a visitor code the browser already holds
    expected_revenue: Decimal = Decimal(0)
    # Filled in by the visits:
    visitor_code: str | None = None
    problems: list[str] = field(default_factory=list)
    #: Loads of a page that Django's cache served (the same render as an earlier load).
    cached_loads: int = 0

    @property
    def is_bot(self) -> bool:
        return self.device is None

    @property
    def page_views(self) -> int:
        return sum(step.page for step in self.steps)


CHROME_WINDOWS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/120.0.0.0 Safari/537.36"
)
IPHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1"
)
IPAD = (
    "Mozilla/5.0 (iPad; CPU OS 16_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/16.6 Mobile/15E148 Safari/604.1"
)
ANDROID_PHONE = (
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/120.0.6099.144 Mobile Safari/537.36"
)
GOOGLEBOT = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"
FIREFOX_MAC = "Mozilla/5.0 (Macintosh; Intel Mac OS X 14.1; rv:121.0) Gecko/20100101 Firefox/121.0"
SAFARI_MAC = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.1 Safari/605.1.15"
)


def personas() -> list[Persona]:
    """The scripted visitors: four devices, a bot, a returning visitor and a buyer."""
    return [
        Persona(
            "Desktop Chrome",
            CHROME_WINDOWS,
            "fr-FR,fr;q=0.9,en;q=0.8",
            "DESKTOP",
            [
                Step("GET", "/"),
                Step("GET", "/products/teapot/"),
                Step("GET", "/static/shop/site.css", page=False),
                Step("GET", "/api/products/", page=False),
            ],
        ),
        Persona(
            "iPhone Safari",
            IPHONE,
            "en-US,en;q=0.9",
            "PHONE",
            [Step("GET", "/"), Step("GET", "/products/mug/")],
        ),
        Persona("iPad Safari", IPAD, "de-DE", "TABLET", [Step("GET", "/products/kettle/")]),
        Persona("Android phone", ANDROID_PHONE, "es-ES,es;q=0.9", "PHONE", [Step("GET", "/")]),
        Persona(
            "Googlebot",
            GOOGLEBOT,
            "",
            None,
            [Step("GET", "/"), Step("GET", "/products/teapot/")],
        ),
        Persona(
            "Returning visitor",
            FIREFOX_MAC,
            "en-GB",
            "DESKTOP",
            [Step("GET", "/"), Step("GET", "/products/mug/")],
            cookie="returning-visitor-2024",
        ),
        Persona(
            "Buyer",
            SAFARI_MAC,
            "it-IT,it;q=0.9",
            "DESKTOP",
            [
                Step("GET", "/products/teapot/"),
                Step("GET", "/checkout/teapot/"),
                # Answered with a redirect (no PAGE), followed to the thank-you page (a PAGE).
                Step("POST", "/checkout/teapot/", data={"quantity": str(PURCHASE_QUANTITY)}),
            ],
            expected_revenue=TEAPOT_PRICE * PURCHASE_QUANTITY,
        ),
    ]


# --------------------------------------------------------------------------------------------
# Output
# --------------------------------------------------------------------------------------------


def say(text: str = "") -> None:
    print(text, flush=True)


def heading(text: str) -> None:
    say()
    say(f"== {text}")


# --------------------------------------------------------------------------------------------
# The example shop, as a real server process
# --------------------------------------------------------------------------------------------


@dataclass
class Site:
    process: subprocess.Popen[bytes]
    server: str
    url: str
    log: IO[bytes]
    stop_signal: signal.Signals

    def log_text(self) -> str:
        self.log.flush()
        self.log.seek(0)
        return self.log.read().decode("utf-8", "replace")


def site_environment(data_api_url: str, cache_dir: str) -> dict[str, str]:
    """The shop's settings come from the environment: point it at this demo's collector, with
    an empty page cache of its own."""
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "shop.settings",
        "KAMELEOON_SITE_CODE": SITE_CODE,
        "KAMELEOON_DATA_API_URL": data_api_url,
        "SHOP_CACHE_DIR": cache_dir,
        "PYTHONUNBUFFERED": "1",
    }


def listening_socket() -> socket.socket:
    """A socket bound to a free local port and already listening.

    gunicorn takes it over as ``fd://N``: no race for the port, and connections made before a
    worker is ready wait in the backlog instead of being refused.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    sock.set_inheritable(True)
    return sock


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_site(data_api_url: str, log: IO[bytes], cache_dir: str) -> Site:
    """gunicorn with two workers (each with its own sender thread), or runserver without it."""
    env = site_environment(data_api_url, cache_dir)
    if importlib.util.find_spec("gunicorn") is not None:
        sock = listening_socket()
        port = sock.getsockname()[1]
        command = [
            sys.executable,
            "-m",
            "gunicorn",
            "shop.wsgi:application",
            f"--bind=fd://{sock.fileno()}",
            "--workers=2",
            "--threads=2",
            "--graceful-timeout=20",
            "--access-logfile=-",
        ]
        with sock:
            process = subprocess.Popen(
                command, cwd=HERE, env=env, stdout=log, stderr=subprocess.STDOUT,
                pass_fds=(sock.fileno(),),
            )  # fmt: skip
        return Site(process, "gunicorn, 2 workers", f"http://127.0.0.1:{port}", log, signal.SIGTERM)
    port = free_port()
    command = [sys.executable, "manage.py", "runserver", "--noreload", f"127.0.0.1:{port}"]
    process = subprocess.Popen(command, cwd=HERE, env=env, stdout=log, stderr=subprocess.STDOUT)
    # runserver has no SIGTERM handler (the process would die without its atexit delivery);
    # Ctrl-C's SIGINT makes it exit normally.
    return Site(process, "runserver", f"http://127.0.0.1:{port}", log, signal.SIGINT)


def wait_until_up(site: Site, deadline: float) -> None:
    """Ask the JSON endpoint (never a page view) until it answers, the server dies, or time's up."""
    while True:
        if site.process.poll() is not None:
            raise DemoError(f"the site exited with status {site.process.returncode} at start-up")
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise DemoError(f"the site did not answer within {START_TIMEOUT:g} s")
        try:
            response = requests.get(
                site.url + "/api/products/",
                headers={"User-Agent": "kameleoon-demo-healthcheck/1"},
                timeout=min(remaining, 1.0),
            )
        except requests.ConnectionError:
            # runserver not listening yet: wait for its exit or a short while, then ask again.
            with_timeout(site.process, min(remaining, 0.1))
            continue
        except requests.Timeout:
            continue  # gunicorn's socket is listening; the request waits in the backlog
        if response.status_code == 200:
            return
        raise DemoError(f"the site answered its health check with HTTP {response.status_code}")


def with_timeout(process: subprocess.Popen[bytes], seconds: float) -> None:
    """Wait for ``process`` to exit, at most ``seconds``."""
    with suppress(subprocess.TimeoutExpired):
        process.wait(timeout=seconds)


def stop_site(site: Site) -> float:
    """Stop the site the way a deployment does and wait: its workers flush at exit."""
    started = time.monotonic()
    if site.process.poll() is None:
        site.process.send_signal(site.stop_signal)
        try:
            site.process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            site.process.kill()
            site.process.wait()
            raise DemoError(f"the site did not stop within {STOP_TIMEOUT:g} s of SIGTERM") from None
    return time.monotonic() - started


class DemoError(Exception):
    """The demo could not run (as opposed to running and finding something wrong)."""


@contextmanager
def running_site(data_api_url: str) -> Iterator[Site]:
    """The site, started and answering; always stopped and reaped afterwards."""
    with tempfile.TemporaryFile() as log, tempfile.TemporaryDirectory() as cache_dir:
        site = start_site(data_api_url, log, cache_dir)
        try:
            wait_until_up(site, time.monotonic() + START_TIMEOUT)
            yield site
        except BaseException:
            say(site.log_text()[-4000:])
            raise
        finally:
            if site.process.poll() is None:  # only when something went wrong
                site.process.kill()
            site.process.wait()


# --------------------------------------------------------------------------------------------
# The visits
# --------------------------------------------------------------------------------------------


def visit(site: Site, persona: Persona, renders: set[str]) -> None:
    """Play one persona's steps in one browser session (cookies kept between requests).

    ``renders`` holds the render times of the product pages seen so far: a page that shows
    one again was served from Django's cache.
    """
    session = requests.Session()
    session.headers.update({"User-Agent": persona.user_agent, "Accept": "text/html,*/*;q=0.8"})
    if persona.language:
        session.headers["Accept-Language"] = persona.language
    if persona.cookie:
        session.cookies.set(COOKIE_NAME, persona.cookie, domain="127.0.0.1", path="/")
    with session:
        page = ""  # the last HTML page, whose form a POST submits
        for step in persona.steps:
            response = request(session, site, step, page)
            kind = response.headers.get("Content-Type", "").split(";")[0]
            hops = " -> ".join(str(r.status_code) for r in [*response.history, response])
            page = response.text if kind == "text/html" else ""
            cached = from_cache(page, renders)
            persona.cached_loads += cached
            note = "  (from Django's cache)" if cached else ""
            say(f"   {persona.label:<18} {step.method:<4} {step.path:<24} {hops:<10} {kind}{note}")
            if response.status_code != 200:
                persona.problems.append(f"{step.method} {step.path} answered {hops}")
            load_beacon(session, site, persona, response.url, page)
            note_visitor_code(persona, page, session)


def request(session: requests.Session, site: Site, step: Step, page: str) -> requests.Response:
    """One step; a POST submits the form of the previous page, CSRF token included."""
    url = site.url + step.path
    if step.method == "GET":
        return session.get(url, timeout=REQUEST_TIMEOUT)
    data = dict(step.data or {})
    token = CSRF_RE.search(page)
    if token:
        data["csrfmiddlewaretoken"] = token.group(1)
    return session.post(url, data=data, headers={"Referer": url}, timeout=REQUEST_TIMEOUT)


def from_cache(page: str, renders: set[str]) -> bool:
    """Whether the page shows a render time already seen: Django's cache served it."""
    match = RENDERED_RE.search(page)
    if not match:
        return False
    seen = match.group(1) in renders
    renders.add(match.group(1))
    return seen


def load_beacon(
    session: requests.Session, site: Site, persona: Persona, page_url: str, page: str
) -> None:
    """Load the page's ``{% kameleoon_beacon %}`` image as a browser does, the page as its
    ``Referer``: it counts the page's view, whoever served the page."""
    match = BEACON_RE.search(page)
    if not match:
        return
    src = html.unescape(match.group(1))
    headers = {"Referer": page_url, "Accept": "image/*", "Sec-Fetch-Dest": "image"}
    response = session.get(site.url + src, headers=headers, timeout=REQUEST_TIMEOUT)
    kind = response.headers.get("Content-Type", "")
    status = response.status_code
    say(f"   {persona.label:<18} GET    its beacon image       {status:<10} {kind}")
    if status != 200 or kind != "image/gif":
        persona.problems.append(f"the beacon of {page_url} answered {status} {kind}")


def note_visitor_code(persona: Persona, page: str, session: requests.Session) -> None:
    """The visitor code the page shows (``{% kameleoon_visitor_code %}``) or, on a page the same
    for everyone (a cached product page), the one in the cookie: it must not change."""
    match = VISITOR_CODE_RE.search(page)
    code = match.group(1) if match else session.cookies.get(COOKIE_NAME)
    if code is None:
        return
    if persona.visitor_code is None:
        persona.visitor_code = code
    elif code != persona.visitor_code:
        persona.problems.append(f"visitor code changed from {persona.visitor_code} to {code}")


# --------------------------------------------------------------------------------------------
# What arrived, and whether it is right
# --------------------------------------------------------------------------------------------

WireEvent = dict[str, object]


def check(people: Sequence[Persona], events: list[WireEvent], violations: list[str]) -> list[str]:
    """Everything wrong with what the collector received; empty means the demo passed."""
    problems = [f"{p.label}: {problem}" for p in people for problem in p.problems]
    counts = count_by_type(events)
    problems += [f"no {kind} event arrived" for kind in ("STATICDATA", "PAGE", "CONVERSION")
                 if not counts[kind]]  # fmt: skip
    problems += [f"violation: {v}" for v in violations]
    summaries = summarize_visitors(events)
    known = {p.visitor_code for p in people}
    problems += [
        f"events from an unknown visitor {code}" for code in summaries if code not in known
    ]
    for persona in people:
        problems += check_persona(persona, summaries)
    if not any(p.cached_loads for p in people if not p.is_bot):
        problems.append("no product page was served from Django's cache")
    return problems


def check_persona(persona: Persona, summaries: dict[str, VisitorSummary]) -> list[str]:
    code = persona.visitor_code
    if code is None:
        return [f"{persona.label}: no page showed a visitor code"]
    summary = summaries.get(code)
    if persona.is_bot:
        return [f"{persona.label}: sent events, but bots must be filtered"] if summary else []
    if persona.cookie and code != persona.cookie:
        return [f"{persona.label}: the cookie's code {persona.cookie} was replaced by {code}"]
    if summary is None:
        return [f"{persona.label}: no events arrived for visitor {code}"]
    problems = []
    if summary.device != persona.device:
        problems.append(f"{persona.label}: deviceType {summary.device}, expected {persona.device}")
    if summary.pages != persona.page_views:
        problems.append(
            f"{persona.label}: {summary.pages} PAGE events for {persona.page_views} page views"
        )
    revenue = Decimal(f"{summary.revenue:.2f}")
    if revenue != persona.expected_revenue:
        problems.append(f"{persona.label}: revenue {revenue}, expected {persona.expected_revenue}")
    return problems


def report(people: Sequence[Persona], events: list[WireEvent], violations: list[str]) -> None:
    """The tables: every event, per visitor, what was filtered, and counts by type."""
    heading(f"What the collector received: {len(events)} events, in arrival order")
    for event in events:
        say("   " + format_event(event))
    heading("Per visitor")
    labels = {p.visitor_code: p.label for p in people if p.visitor_code}
    for line in visitor_table(summarize_visitors(events).values(), labels):
        say("   " + line)
    heading("Filtered (sent nothing to Kameleoon)")
    rows = [
        [p.label, p.visitor_code, f"{len(p.steps)} page(s) served", "bot: not tracked"]
        for p in people
        if p.is_bot
    ]
    for line in format_table(["who", "visitor", "served", "why"], rows):
        say("   " + line)
    heading("Served from Django's cache, and counted by the beacon")
    rows = [[p.label, str(p.cached_loads)] for p in people if p.cached_loads and not p.is_bot]
    for line in format_table(["who", "cached loads"], rows):
        say("   " + line)
    heading("Events by type")
    counts = count_by_type(events)
    for line in format_table(["type", "events"], sorted(counts.items())):
        say("   " + line)
    heading("Violations of the Data API's rules")
    for violation in violations or ["none"]:
        say("   " + violation)


# --------------------------------------------------------------------------------------------
# The whole run
# --------------------------------------------------------------------------------------------


def run() -> int:
    started = time.monotonic()
    people = personas()
    live = io.StringIO()  # the collector's own lines; the demo prints its tables instead
    heading("Starting the collector (a strict local stand-in of Kameleoon's Data API)")
    with Collector(port=0, site_code=SITE_CODE, out=live, err=live) as collector:
        say(f"   listening on {collector.url}")
        heading("Starting the example shop (example_project/), pointed at the collector")
        with running_site(collector.url) as site:
            up = time.monotonic() - started
            say(f"   {site.url}  ({site.server}), answering {up:.1f} s after the demo started")
            heading("Visiting the shop over HTTP")
            renders: set[str] = set()
            for persona in people:
                visit(site, persona, renders)
            heading(
                f"Stopping the shop ({site.stop_signal.name}): its workers deliver what they hold"
            )
            before = len(collector.server.events)
            took = stop_site(site)
            at_exit = len(collector.server.events) - before
            say(f"   stopped in {took:.1f} s (exit status {site.process.returncode}); {before} "
                f"events had arrived while it ran, {at_exit} more at its exit")  # fmt: skip
            for line in site.log_text().splitlines():
                if "Kameleoon" in line:
                    say("   site log: " + line)
        events = collector.server.events
        violations = collector.server.violations
    report(people, events, violations)
    problems = check(people, events, violations)
    heading(f"Result ({time.monotonic() - started:.1f} s)")
    if problems:
        for problem in problems:
            say(f"   FAILED: {problem}")
        return 1
    say("   OK: STATICDATA, PAGE and CONVERSION events arrived, the bot was filtered, pages")
    say("   served from Django's cache were counted once, and the Data API stand-in found")
    say("   nothing wrong.")
    return 0


def main() -> int:
    try:
        return run()
    except DemoError as exc:
        say(f"   FAILED: {exc}")
        return 1
    except KeyboardInterrupt:
        say("   interrupted")
        return 130


if __name__ == "__main__":
    sys.exit(main())
