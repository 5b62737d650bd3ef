"""What the suite's modules share: constants, sample data, waiting, processes and real servers.

Test modules and ``conftest.py`` import from here and never from one another. The test site
itself (views, URLs, signals, consent callables, ``reliability/testsite``) lives beside it.
"""

from __future__ import annotations

import contextlib
import fcntl
import inspect
import itertools
import json
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import requests
from asgiref.sync import async_to_sync
from django.test import AsyncClient, Client, RequestFactory
from gunicorn import version_info as GUNICORN_VERSION

import django_kameleoon
from django_kameleoon import checks
from django_kameleoon.backends import celery as celery_backend
from django_kameleoon.backends import tasks as tasks_backend
from django_kameleoon.conf import DICT_CHECK_ID, RULES
from django_kameleoon.testing import DataApiServer

ROOT = Path(__file__).resolve().parent.parent

# -- the test site and its Data API ------------------------------------------------------------

SITE_CODE = "testsite01"
COOKIE = "kameleoonVisitorCode"
#: A visitor code the middleware made (a cookie it kept may be any valid code).
NEW_CODE = re.compile(r"[a-z0-9]{16}")

#: The README's order with Django's whole-site cache: ours above it, so it sees cache hits.
SITE_CACHE = [
    "django.middleware.security.SecurityMiddleware",
    "django_kameleoon.middleware.KameleoonMiddleware",
    "django.middleware.cache.UpdateCacheMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.middleware.cache.FetchFromCacheMiddleware",
]

#: The ``kameleoon`` fixture's value: call it with ``KAMELEOON`` overrides.
Configure = Callable[..., None]


def delivered(data_api: DataApiServer) -> list[dict[str, Any]]:
    """Everything queued so far, once the backend says it is delivered."""
    assert django_kameleoon.flush(5)
    return data_api.events


#: One event of every type with every one of its fields, at the edges of the API's ranges and
#: limits: the suite's reference sample, as a caller passes it to ``track()``.
FULL_EVENTS: dict[str, dict[str, Any]] = {
    "STATICDATA": {
        "visitNumber": 3,
        "timeSincePreviousVisit": 2**40,
        "browser": "Safari",
        "browserIndex": 2,
        "browserVersion": 16.3,
        "os": "Windows",
        "osIndex": 1,
        "screenWidth": 1920,
        "screenHeight": 1080,
        "localeLanguageTag": "fr-FR",
        "deviceType": "DESKTOP",
    },
    "PAGE": {
        "href": "https://www.example.com/p?a=1&b=é=%20\nx",
        "canonicalHref": "https://www.example.com/p",
        "title": "Chaussures & sacs = 100% cuir\nnouveauté ✓",
        "keyPageIndices": [1, 2],
        "referrerHref": "https://search.example/?q=a%26b",
        "referrerIndices": [],
    },
    "CONVERSION": {
        "goalId": 2**40,
        "revenue": 19.99,
        "negative": True,
        "metadata": {1: ["a&b=c", "line\nbreak"], 2: ["ünïcödé 日本"], -7: []},
    },
    "TARGETINGSEGMENT": {"id": 9_000_000_000},
    "EXPERIMENT": {"id": 12, "variationId": 0},
    "PERSONALIZATION": {"id": 5, "variationId": 0, "unexpositionCause": "SCHEDULE"},
    "WEATHER": {
        "temperature": 293.15,
        "humidity": 40.5,
        "pressure": 1013.25,
        "windSpeed": 3.2,
        "cloudiness": 75.0,
        "sunriseTime": 1_700_000_000_000,
        "sunsetTime": 1_700_040_000_000,
        "weatherCode": "Sky is Clear",
    },
    "CUSTOMDATA": {
        "index": 3,
        "mappingIdentifier": False,
        "valuesCountMap": {"gold & silver": 2, "a=b%": 1, "x" * 2048: 3},
        "overwrite": False,
    },
    "PRODUCT": {"ean": "4006381333931"},
    "GEOLOCATION": {
        "country": "France",
        "region": "Île-de-France",
        "city": "Paris",
        "postalCode": "75001",
        "latitude": 48.8566,
        "longitude": -2,
    },
}

# -- User-Agent headers of more than one test module -------------------------------------------

#: Chrome 120 on Windows: the desktop browser the middleware tracks (python-requests' own UA is
#: not used).
CHROME = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/120.0.0.0 Safari/537.36"
)
SAFARI_MAC = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/16.3 Safari/605.1.15"
)
FIREFOX_LINUX = "Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0"
IPHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1_2 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.1.2 Mobile/15E148 Safari/604.1"
)
IPAD = (
    "Mozilla/5.0 (iPad; CPU OS 16_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/16.6 Mobile/15E148 Safari/604.1"
)
ANDROID_PHONE = (
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/120.0.6099.144 Mobile Safari/537.36"
)
#: A Galaxy Tab S9: no "Mobile" in its header, so a tablet.
ANDROID_TABLET = (
    "Mozilla/5.0 (Linux; Android 13; SM-X700) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/119.0.0.0 Safari/537.36"
)
GOOGLEBOT = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"
BINGBOT = "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)"

#: What issue 11 found counted as visitors: programs, monitors, fetchers; none is a person.
NOT_PEOPLE: dict[str, str] = {
    "curl": "curl/8.5.0",
    "wget": "Wget/1.21.4",
    "python-requests": "python-requests/2.32.3",
    "python-httpx": "python-httpx/0.27.0",
    "aiohttp": "Python/3.11 aiohttp/3.9.5",
    "go-http-client": "Go-http-client/1.1",
    "okhttp": "okhttp/4.12.0",
    "axios": "axios/1.7.2",
    "node-fetch": "node-fetch/1.0 (+https://github.com/bitinn/node-fetch)",
    "apache-httpclient": "Apache-HttpClient/4.5.14 (Java/17.0.9)",
    "postman": "PostmanRuntime/7.39.0",
    "empty": "",
    "blank": "   ",
    "headless-chrome": (
        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "HeadlessChrome/131.0.0.0 Safari/537.36"
    ),
    "lighthouse": (
        "Mozilla/5.0 (Linux; Android 11; moto g power (2022)) AppleWebKit/537.36 (KHTML, like "
        "Gecko) Chrome/131.0.0.0 Mobile Safari/537.36 Chrome-Lighthouse"
    ),
    "datadog-synthetics": (
        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/131.0.0.0 Safari/537.36 DatadogSynthetics"
    ),
    "bytespider": (
        "Mozilla/5.0 (Linux; Android 5.0) AppleWebKit/537.36 (KHTML, like Gecko) Mobile "
        "Safari/537.36 (compatible; Bytespider; spider-feedback@bytedance.com)"
    ),
    "tiktokspider": (
        "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/125.0.0.0 Mobile Safari/537.36 (compatible; TikTokSpider; "
        "ttspider-feedback@tiktok.com)"
    ),
    "googleother": "GoogleOther",
    "mediapartners-google": "Mediapartners-Google",
    "feedfetcher-google": "FeedFetcher-Google; (+http://www.google.com/feedfetcher.html)",
    "claude-user": (
        "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; Claude-User/1.0; "
        "+Claude-User@anthropic.com)"
    ),
    "perplexity-user": (
        "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; Perplexity-User/1.0; "
        "+https://perplexity.ai/perplexity-user)"
    ),
    "facebookcatalog": "facebookcatalog/1.0",
    "iframely": "Iframely/1.3.1 (+https://iframely.com/docs/about)",
    "googlebot": GOOGLEBOT,
}

#: People: the browsers issue 11 names, as current versions send them.
PEOPLE: dict[str, str] = {
    "chrome": CHROME,
    "safari": SAFARI_MAC,
    "firefox": FIREFOX_LINUX,
    "edge": (
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/131.0.0.0 Safari/537.36 Edg/131.0.2903.86"
    ),
    "samsung-internet": (
        "Mozilla/5.0 (Linux; Android 14; SM-S928B) AppleWebKit/537.36 (KHTML, like Gecko) "
        "SamsungBrowser/27.0 Chrome/125.0.0.0 Mobile Safari/537.36"
    ),
    "facebook-in-app": (
        "Mozilla/5.0 (Linux; Android 14; SM-S918B Build/UP1A.231005.007; wv) AppleWebKit/537.36 "
        "(KHTML, like Gecko) Version/4.0 Chrome/131.0.6778.135 Mobile Safari/537.36 "
        "[FB_IAB/FB4A;FBAV/494.0.0.52.70;]"
    ),
    "instagram-in-app": (
        "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, "
        "like Gecko) Mobile/15E148 Instagram 357.0.0.25.101 (iPhone14,5; iOS 18_1; en_US; en; "
        "scale=3.00; 1170x2532; 658645474)"
    ),
}

#: Labelled User-Agents (tests/data/user_agents/README.md says where each file comes from).
USER_AGENTS_DIR = ROOT / "tests" / "data" / "user_agents"


def user_agent_corpus(name: str) -> dict[str, list[str]]:
    """One corpus file as ``{category: [user agents]}``: ``## name`` lines start a category
    (``"all"`` before any), other ``#`` lines are comments."""
    corpus: dict[str, list[str]] = {}
    category = "all"
    for line in (USER_AGENTS_DIR / name).read_text(encoding="utf-8").splitlines():
        if line.startswith("## "):
            category = line[3:].strip()
        elif line and not line.startswith("#"):
            corpus.setdefault(category, []).append(line)
    return corpus


# -- waiting ------------------------------------------------------------------------------------


def wait_until(
    condition: Callable[[], bool],
    what: str,
    timeout: float = 10.0,
    *,
    interval: float = 0.01,
    details: Callable[[], str] | None = None,
) -> None:
    """Poll ``condition`` until it holds; fail with ``what`` (and ``details()``) at the deadline."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            more = f":\n{details()}" if details else ""
            raise AssertionError(f"waited {timeout} s for {what}{more}")
        time.sleep(interval)


def returns(call: Callable[[], Any], within: float = 20.0) -> Any:
    """``call()``'s value; the test fails (rather than hangs) if it does not return in time."""
    result: list[Any] = []
    thread = threading.Thread(target=lambda: result.append(call()), daemon=True)
    thread.start()
    thread.join(within)
    assert result, f"still blocked after {within} s"
    return result[0]


def asgi(client: AsyncClient, method: str, path: str, **kwargs: Any) -> Any:
    """Run one AsyncClient request from a sync test (no async test plugin needed).

    Wrapped in a coroutine function: under Django 4.2 the client's methods are plain functions
    returning coroutines, which ``async_to_sync`` warns about.
    """
    # A desktop Chrome unless the test says otherwise: the client itself sends no User-Agent.
    kwargs["headers"] = {"user-agent": CHROME, **kwargs.get("headers", {})}

    async def request() -> Any:
        return await getattr(client, method)(path, **kwargs)

    return async_to_sync(request)()


def browser(**defaults: Any) -> Client:
    """A test client that sends a desktop Chrome's User-Agent.

    Django's own test clients send none, and a request without a User-Agent is a program's:
    it records nothing (see README, "Bots and programs").
    """
    return Client(HTTP_USER_AGENT=CHROME, **defaults)


def async_browser(**defaults: Any) -> AsyncClient:
    """:func:`browser` for ASGI: an ``AsyncClient`` that sends a desktop Chrome's User-Agent."""
    return AsyncClient(HTTP_USER_AGENT=CHROME, **defaults)


def browser_requests() -> RequestFactory:
    """A ``RequestFactory`` whose requests carry a desktop Chrome's User-Agent."""
    return RequestFactory(HTTP_USER_AGENT=CHROME)


# -- processes ------------------------------------------------------------------------------------


def python_module(module: str, *args: str) -> list[str]:
    """``python -m module args``, with this interpreter, so any virtualenv (CI's too) works."""
    return [sys.executable, "-m", module, *args]


def run_python(
    *args: str, timeout: float = 60, env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run this interpreter with ``args`` in the project's root, to the end; capture its output.

    ``env`` is added to this process's environment.
    """
    return subprocess.run(
        [sys.executable, *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )


PRELUDE = """
import json, sys
import django
from django.conf import settings
settings.configure(INSTALLED_APPS=json.loads(sys.argv[2]), KAMELEOON=json.loads(sys.argv[1]))
django.setup()
import django_kameleoon
"""


def run_script(
    body: str, kameleoon: dict[str, Any], *, installed_apps: tuple[str, ...] = ("django_kameleoon",)
) -> tuple[subprocess.CompletedProcess[str], float]:
    """Run ``body`` in a fresh interpreter with Django set up; return it and its wall time."""
    started = time.monotonic()
    result = run_python(
        "-c",
        PRELUDE + textwrap.dedent(body),
        json.dumps(kameleoon),
        json.dumps(list(installed_apps)),
    )
    return result, time.monotonic() - started


@dataclass
class Process:
    """A process started by :func:`spawn` (a server, a worker, a script) and its output."""

    popen: subprocess.Popen[bytes]
    log: Path
    url: str = ""

    def output(self) -> str:
        """Its stdout and stderr so far, interleaved as written."""
        return self.log.read_text(errors="replace")

    def wait_for(
        self, condition: Callable[[], bool], what: str, timeout: float, interval: float = 0.01
    ) -> None:
        """Wait until ``condition`` holds; fail, with the output, if the process exits first."""

        def done() -> bool:
            if condition():
                return True
            if self.popen.poll() is not None:
                raise AssertionError(
                    f"the process exited ({self.popen.returncode}) before {what}:\n" + self.output()
                )
            return False

        wait_until(done, what, timeout, interval=interval, details=self.output)

    def wait_for_output(self, pattern: str, timeout: float = 20.0) -> re.Match[str]:
        """Wait until a whole line of output matches ``pattern`` (``^`` and ``$`` are lines')."""
        found: list[re.Match[str]] = []

        def printed() -> bool:
            text = self.output()
            match = re.search(pattern, text[: text.rfind("\n") + 1], re.M)
            found.extend([match] if match else [])
            return match is not None

        self.wait_for(printed, f"a line matching {pattern!r}", timeout)
        return found[0]

    def stop(self, sig: int = signal.SIGTERM, *, timeout: float, group: bool = False) -> float:
        """Send ``sig`` (to the whole process group if ``group``, as Ctrl-C in a terminal does)
        and wait for the process to exit; return how long that took.

        Fails the test (after killing the whole process group) if it outlives ``timeout``.
        """
        started = time.monotonic()
        if group:
            os.killpg(self.popen.pid, sig)
        else:
            self.popen.send_signal(sig)
        try:
            self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            kill_group(self.popen)
            raise AssertionError(
                f"the process did not exit within {timeout} s of signal {sig}:\n{self.output()}"
            ) from None
        return time.monotonic() - started


def kill_group(popen: subprocess.Popen[bytes]) -> None:
    """SIGKILL the process group we started (the process and its children) and reap it."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(popen.pid, signal.SIGKILL)
    popen.wait(10)


@contextlib.contextmanager
def spawn(
    argv: list[str],
    log: Path,
    *,
    env: Mapping[str, str] | None = None,
    pass_fds: tuple[int, ...] = (),
) -> Iterator[Process]:
    """Run ``argv`` in its own process group, its output (unbuffered) in ``log``, with ``env``
    added to ours; whatever happens, nothing of it outlives the block."""
    with log.open("wb") as out:
        popen = subprocess.Popen(
            argv,
            cwd=ROOT,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            pass_fds=pass_fds,
            start_new_session=True,
        )
    try:
        yield Process(popen, log)
    finally:
        if popen.poll() is None:
            kill_group(popen)
        else:  # the leader is gone; make sure no orphaned child of its group is left
            with contextlib.suppress(ProcessLookupError):
                os.killpg(popen.pid, signal.SIGKILL)
        print_for_a_failure(argv, log)


#: A server's request log line (uWSGI's, gunicorn's access log): left out of a failure's report.
_REQUEST_LINE = re.compile(r'(?:\] |")(?:GET|HEAD|POST) /')


def print_for_a_failure(argv: list[str], log: Path) -> None:
    """Print what the process said, its request log left out: pytest shows it when the test
    fails. An assertion on the events that arrived often fails after the process is gone, and
    a count that falls short says little without the workers' own account of their exits.
    """
    lines = log.read_text(errors="replace").splitlines()
    command = " ".join(Path(arg).name for arg in argv[:3])
    print(f"--- output of {command} ... ({log}), request lines left out:")
    print("\n".join(line for line in lines if not _REQUEST_LINE.search(line))[-20_000:])


def listening_socket() -> socket.socket:
    """A socket listening on 127.0.0.1 at a port the kernel chose, inheritable by a child."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def free_port() -> int:
    """A port free a moment ago, for a program that binds its own (prefer a passed socket)."""
    with listening_socket() as sock:
        return int(sock.getsockname()[1])


def wait_until_answering(
    process: Process,
    url: str,
    timeout: float = 30.0,
    *,
    headers: Mapping[str, str] | None = None,
    request_timeout: float = 1.0,
) -> requests.Response:
    """GET ``url`` until it answers 200, and return that answer; fail if ``process`` exits."""
    answers: list[requests.Response] = []

    def answered() -> bool:
        try:
            answers.append(requests.get(url, headers=headers, timeout=request_timeout))
        except requests.RequestException:
            return False
        return answers[-1].status_code == 200

    process.wait_for(answered, f"{url} to answer 200", timeout, interval=0.05)
    return answers[-1]


# -- the test site under real servers (tests/reliability) --------------------------------------

SITE_SETTINGS = "tests.reliability.testsite.settings"


def site_environment(kameleoon: dict[str, Any]) -> dict[str, str]:
    """The environment of a process running the test site with these ``KAMELEOON`` overrides."""
    return {
        "PYTHONPATH": str(ROOT),
        "DJANGO_SETTINGS_MODULE": SITE_SETTINGS,
        "KAMELEOON_TEST_SETTINGS": json.dumps(kameleoon),
    }


@contextlib.contextmanager
def serve(
    argv: Callable[[int], list[str]],
    kameleoon: dict[str, Any],
    log: Path,
    *,
    ready_path: str = "/api/data.json",
    timeout: float = 30.0,
    env: Mapping[str, str] | None = None,
) -> Iterator[Process]:
    """Start a server on a fresh socket (``argv(fd)`` builds its command) and wait until it answers.

    The socket is bound here and inherited by the server: no port race, and connections made
    before the server is ready wait in its backlog rather than failing. ``ready_path`` must be
    a page the middleware does not track, so that polling sends nothing. ``env`` is added to
    the site's environment.
    """
    environment = {**site_environment(kameleoon), **(env or {})}
    with listening_socket() as sock:
        fd = sock.fileno()
        port = sock.getsockname()[1]
        with spawn(argv(fd), log, env=environment, pass_fds=(fd,)) as process:
            sock.close()  # the server holds its own copy; ours would keep the port alive
            process.url = f"http://127.0.0.1:{port}"
            wait_until_answering(process, process.url + ready_path, timeout)
            yield process


#: gunicorn 25.1+ opens a control socket in ~/.gunicorn unless told not to.
NO_CONTROL_SOCKET = ["--no-control-socket"] if GUNICORN_VERSION >= (25, 1) else []


def gunicorn(*options: str, app: str = "wsgi") -> Callable[[int], list[str]]:
    """The command that serves the test site with gunicorn on an inherited socket, for serve()."""

    def argv(fd: int) -> list[str]:
        return python_module(
            "gunicorn",
            f"tests.reliability.testsite.{app}:application",
            f"--bind=fd://{fd}",
            *NO_CONTROL_SOCKET,
            "--graceful-timeout=20",
            "--log-level=info",
            *options,
        )

    return argv


def uvicorn(*options: str) -> Callable[[int], list[str]]:
    """The command that serves the test site with uvicorn on an inherited socket, for serve()."""

    def argv(fd: int) -> list[str]:
        return python_module(
            "uvicorn",
            "tests.reliability.testsite.asgi:application",
            f"--fd={fd}",
            "--lifespan=on",
            "--no-access-log",
            *options,
        )

    return argv


PAGE_VIEWS = 120
#: Secrets in the page's query string and in the referrer: REDACT_QUERY_PARAMS drops them.
SECRET_PAGE = "/page/?q=shoes&token=s3cret&userEmail=a%40b.c"
SECRET_REFERRER = "https://mail.example/reset?password=hunter2&lang=fr"


@dataclass(frozen=True)
class View:
    """One page view: the visitor code it was made under, and whether the server made it."""

    visitor_code: str
    new: bool


def view_page(url: str, index: int) -> View:
    """GET one page as a new visitor (every third) or as a returning one with its own cookie."""
    cookies = {} if index % 3 == 0 else {COOKIE: f"visitor-{index}"}
    response = requests.get(
        url,
        cookies=cookies,
        headers={
            "User-Agent": CHROME,
            "Connection": "close",
            "Accept-Language": "fr-CH",
            "Referer": SECRET_REFERRER,
        },
        timeout=15,
    )
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"].startswith("text/html")
    if cookies:
        # A valid cookie is kept: at most renewed (the same code, a later expiry).
        assert response.cookies.get(COOKIE) in (None, cookies[COOKIE])
        return View(cookies[COOKIE], new=False)
    return View(response.cookies[COOKIE], new=True)


def burst(base_url: str, paths: list[str], count: int = PAGE_VIEWS, first: int = 0) -> list[View]:
    """``count`` page views over real HTTP from 8 concurrent clients, cycling through ``paths``;
    their visitors are numbered from ``first`` on."""
    urls = [base_url + path for path in itertools.islice(itertools.cycle(paths), count)]
    with ThreadPoolExecutor(8) as pool:
        return list(pool.map(view_page, urls, range(first, first + count)))


def assert_each_view_arrived_once(data_api: DataApiServer, views: list[View]) -> None:
    codes = Counter(view.visitor_code for view in views)
    assert len(codes) == len(views), "every page view was made under its own visitor code"
    events = data_api.wait_for_events(2 * len(views), timeout=30)
    by_type = Counter(event["eventType"] for event in events)
    assert by_type == {"PAGE": len(views), "STATICDATA": len(views)}
    for event_type in ("PAGE", "STATICDATA"):
        received = Counter(e["visitorCode"] for e in events if e["eventType"] == event_type)
        assert received == codes, f"{event_type} events do not match the page views one to one"
    assert data_api.duplicates == []
    static = next(e for e in events if e["eventType"] == "STATICDATA")
    assert (static["browserIndex"], static["localeLanguageTag"]) == (0, "fr-CH")
    for page in (e for e in events if e["eventType"] == "PAGE"):
        assert page["referrerHref"] == "https://mail.example/reset?lang=fr"
        assert "s3cret" not in page["href"] and "a%40b.c" not in page["href"], page["href"]


#: ``--max-requests`` for :func:`recycle_a_worker_into_a_retry`: 12 page views recycle one.
RECYCLE_AFTER = 6


def recycle_a_worker_into_a_retry(server: Process, data_api: DataApiServer) -> list[View]:
    """Page views that have a worker recycled (the server runs with ``--max-requests``
    :data:`RECYCLE_AFTER`) and its exit delivery refused once with ``Retry-After: 3``; returns
    while the worker waits to retry, so that a stop sent now reaches a process mid-delivery.
    """
    data_api.fail(503, headers={"Retry-After": "3"})
    views = burst(server.url, ["/plain/"], count=2 * RECYCLE_AFTER)
    server.wait_for_output(r"HTTP 503; retry 1 in", timeout=10)
    return views


def assert_the_retry_delivered(process: Process) -> None:
    """The worker that waited to retry delivered everything, and nothing was cut short."""
    output = process.output()
    assert re.search(r"totals: \d+ event\(s\) sent, 0 dropped, [1-9]\d* retried", output), output
    assert "django_kameleoon/" not in output, output  # no traceback through the library


def assert_no_loss_reported(process: Process) -> None:
    """The library logged no warning or error, and appears in no traceback.

    (gunicorn's quick shutdown may print a traceback of its own: a worker leaves through
    ``sys.exit`` from a signal handler, interrupting whatever it was doing.)
    """
    output = process.output()
    assert not re.search(r"(WARNING|ERROR|CRITICAL) django_kameleoon", output), output
    assert "django_kameleoon/" not in output, output


# -- the Data API stand-in (tests/test_testing_*.py): posting to it, valid events to post ------

SITE = "site-under-test"
UA = "django-kameleoon-tests/1.0"
VISITOR = "visitor-0001"


def serve_stand_in() -> Iterator[DataApiServer]:
    """A ``DataApiServer`` for ``SITE``, serving for one test: each module's ``api`` fixture."""
    with DataApiServer(site_code=SITE) as server:
        yield server


def post(
    api: DataApiServer,
    body: bytes | str | Any,
    *,
    fmt: str = "json",
    params: dict[str, str] | None = None,
    headers: dict[str, Any] | None = None,
    path: str = "/visit/events",
    method: str = "POST",
    session: requests.Session | None = None,
) -> requests.Response:
    query = {"siteCode": SITE, **({"json": "true"} if fmt == "json" else {}), **(params or {})}
    send = session.request if session else requests.request
    return send(
        method,
        api.url + path,
        params=query,
        data=body,
        headers={"User-Agent": UA, **(headers or {})},
        timeout=5,
    )


def query_value(value: Any) -> str:
    """A value as our sender must write it in query format: JSON types as JSON text."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    return str(value)


def as_query(events: list[dict[str, Any]]) -> bytes:
    lines = (
        "&".join(f"{quote(k, safe='')}={quote(query_value(v), safe='')}" for k, v in e.items())
        for e in events
    )
    return "\n".join(lines).encode()


def as_json(events: list[dict[str, Any]]) -> bytes:
    return json.dumps(events).encode()


#: ``FULL_EVENTS`` as a sender puts them on the wire (JSON object keys are strings): valid events
#: for the stand-in's own tests, written by hand, not by the package under test.
VALID: dict[str, dict[str, Any]] = json.loads(json.dumps(FULL_EVENTS))


def event(event_type: str, n: int = 1, **changes: Any) -> dict[str, Any]:
    """A valid event of ``event_type``, with ``changes`` (a value of ``...`` removes a field)."""
    base = {"visitorCode": VISITOR, "nonce": f"{n:016x}", "eventType": event_type}
    merged = {**base, **VALID[event_type], **changes}
    return {k: v for k, v in merged.items() if v is not ...}


def all_valid() -> list[dict[str, Any]]:
    return [event(t, n) for n, t in enumerate(VALID, 1)]


def typed(e: dict[str, Any]) -> dict[str, Any]:
    """What the server should store: float64 fields as floats."""
    floats = {"browserVersion", "revenue", "temperature", "humidity", "pressure"}
    floats |= {"windSpeed", "cloudiness", "latitude", "longitude"}
    return {k: float(v) if k in floats else v for k, v in e.items()}


# -- system checks (tests/test_checks.py, tests/test_readme.py) ----------------------------------


def every_check_id() -> list[str]:
    """Every id the app reports: those declared in ``conf``, those written in ``checks.py``, and
    the durable backends' ``setup_problems`` (which ``checks.check_backend_setup`` reports)."""
    declared = [rule.check_id for rule in RULES.values()] + [DICT_CHECK_ID]
    written = re.findall(r'id="django_kameleoon\.(\w+)"', inspect.getsource(checks))
    for backend in (celery_backend, tasks_backend):
        written += re.findall(r'Problem\(\s*"(\w+)"', inspect.getsource(backend))
    return [f"django_kameleoon.{check_id}" for check_id in declared + written]


def metric_samples(text: str) -> dict[str, float]:
    """The ``kameleoon_`` samples of a Prometheus exposition, as ``{"name{label=value}": value}``
    (without the ``_created`` timestamps)."""
    from prometheus_client.parser import text_string_to_metric_families

    found: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name.startswith("kameleoon_") and not sample.name.endswith("_created"):
                labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
                found[sample.name + (f"{{{labels}}}" if labels else "")] = sample.value
    return found


# -- a real browser -------------------------------------------------------------------------------

#: Chromium as Debian packages it, then the other names it goes by.
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "chrome")
#: Headless, sandbox-less (a container's root), and silent on the network but for our pages.
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    f"--user-agent={CHROME}",  # HeadlessChrome's own is a bot's: nothing would be tracked
    "--remote-debugging-pipe",
)
#: The longest any one wait on Chromium may take before the test fails.
CHROMIUM_TIMEOUT = 30.0


class Browser:
    """A headless Chromium driven over the DevTools protocol on a pipe (``--remote-debugging-pipe``:
    JSON messages ended by NUL, commands on its fd 3, answers and events on its fd 4): no driver,
    no websocket, no download. Read in the caller's thread, with a deadline on every wait, so
    there is no reader thread to outlive the browser and keep a descriptor open."""

    def __init__(self, process: Process, commands: int, answers: int) -> None:
        self.process = process
        self.commands = commands
        self.answers = answers
        self.buffer = b""
        self.ids = itertools.count(1)
        #: Events read while waiting for something else, kept for :meth:`wait_event`.
        self.events: list[dict[str, Any]] = []

    def call(self, method: str, session: str | None = None, **params: Any) -> dict[str, Any]:
        """Send one command (to the tab ``session``, if given) and return its result; a
        DevTools error fails the test."""
        number = next(self.ids)
        message: dict[str, Any] = {"id": number, "method": method, "params": params}
        if session:
            message["sessionId"] = session
        os.write(self.commands, json.dumps(message).encode() + b"\0")
        answer = self._receive(lambda m: m.get("id") == number, f"an answer to {method}")
        if "error" in answer:
            raise AssertionError(f"{method}: {answer['error']}")
        result: dict[str, Any] = answer["result"]
        return result

    def wait_event(self, method: str, session: str) -> dict[str, Any]:
        """The first ``method`` event of the tab ``session`` not waited for yet."""

        def matches(message: dict[str, Any]) -> bool:
            return message.get("method") == method and message.get("sessionId") == session

        for event in self.events:
            if matches(event):
                self.events.remove(event)
                return event
        return self._receive(matches, method)

    def forget_events(self, session: str) -> None:
        """Drop the events of the tab ``session`` read so far (before it loads another page)."""
        self.events = [e for e in self.events if e.get("sessionId") != session]

    def _receive(self, matches: Callable[[dict[str, Any]], bool], what: str) -> dict[str, Any]:
        deadline = time.monotonic() + CHROMIUM_TIMEOUT
        while not matches(message := self._read(deadline, what)):
            if "method" in message:
                self.events.append(message)
        return message

    def _read(self, deadline: float, what: str) -> dict[str, Any]:
        while b"\0" not in self.buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not select.select([self.answers], [], [], remaining)[0]:
                raise AssertionError(
                    f"Chromium sent no {what} within {CHROMIUM_TIMEOUT} s:\n"
                    + self.process.output()
                )
            chunk = os.read(self.answers, 1 << 16)
            if not chunk:
                raise AssertionError(f"Chromium exited before {what}:\n{self.process.output()}")
            self.buffer += chunk
        message, _, self.buffer = self.buffer.partition(b"\0")
        found: dict[str, Any] = json.loads(message)
        return found

    def tab(self, language: str | None = None) -> Tab:
        """A new tab in a browser context of its own (see :class:`Tab`)."""
        return Tab(self, language)


class Tab:
    """A page in a browser context of its own: its own cookies, and no HTTP cache, so that every
    load asks the server (and whatever caches stand in front of it). ``language``, when given,
    is the ``Accept-Language`` it sends."""

    def __init__(self, browser: Browser, language: str | None = None) -> None:
        self.browser = browser
        context = browser.call("Target.createBrowserContext")["browserContextId"]
        target = browser.call("Target.createTarget", url="about:blank", browserContextId=context)
        attached = browser.call("Target.attachToTarget", targetId=target["targetId"], flatten=True)
        self.session: str = attached["sessionId"]
        self.call("Page.enable")
        self.call("Network.enable")
        self.call("Network.setCacheDisabled", cacheDisabled=True)
        if language:
            self.call("Network.setUserAgentOverride", userAgent=CHROME, acceptLanguage=language)

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        return self.browser.call(method, self.session, **params)

    def navigate(self, url: str) -> None:
        """Start loading ``url`` (what happens next is for :meth:`wait_for` to see)."""
        navigated = self.call("Page.navigate", url=url)
        assert "errorText" not in navigated, f"{url}: {navigated['errorText']}"

    def load(self, url: str) -> None:
        """Load ``url`` and wait for its load event (images included)."""
        self.browser.forget_events(self.session)
        self.navigate(url)
        self.browser.wait_event("Page.loadEventFired", self.session)

    def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page (awaited when it is a promise)."""
        result = self.call(
            "Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True
        )
        if "exceptionDetails" in result:
            raise AssertionError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait_for(self, expression: str, what: str, timeout: float = 20) -> None:
        """Wait until ``expression`` is truthy in the page; fail showing the page if it is not."""
        page = "location.href + '\\n' + document.documentElement.outerHTML.slice(0, 3000)"
        wait_until(
            lambda: bool(self.evaluate(expression)),
            what,
            timeout,
            interval=0.1,
            details=lambda: str(self.evaluate(page)),
        )

    def cookie(self, name: str, url: str) -> str | None:
        """The value of the cookie ``name`` the page's context would send to ``url``."""
        cookies = self.call("Network.getCookies", urls=[url])["cookies"]
        return next((c["value"] for c in cookies if c["name"] == name), None)


@contextlib.contextmanager
def chromium(log: Path, profile: Path) -> Iterator[Browser]:
    """A headless Chromium with a fresh profile in ``profile``, its output in ``log``; skips the
    test only when the machine has none (Debian: ``apt-get install -y chromium``)."""
    import pytest

    binary = next(filter(None, map(shutil.which, CHROMIUM_NAMES)), None)
    if binary is None:
        pytest.skip(f"no Chromium ({', '.join(CHROMIUM_NAMES)}) on PATH: apt-get install chromium")
    opened: list[int] = []
    try:
        opened.extend(os.pipe())
        opened.extend(os.pipe())
        to_browser, commands, answers, from_browser = opened
        # The protocol's pipes must be the browser's fds 3 and 4: moved there by bash (dash
        # takes no fd above 9) from copies above 9, so that neither move clobbers the other.
        theirs = [fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10) for fd in (to_browser, from_browser)]
        opened.extend(theirs)
        script = f'exec "$0" "$@" 3<&{theirs[0]} 4>&{theirs[1]} {theirs[0]}<&- {theirs[1]}>&-'
        argv = ["bash", "-c", script, binary, *CHROMIUM_FLAGS, f"--user-data-dir={profile}"]
        with spawn(argv, log, pass_fds=tuple(theirs)) as process:
            # Only Chromium may hold its ends: our reads see the end of the pipe when it exits.
            for fd in (to_browser, from_browser, *theirs):
                opened.remove(fd)
                os.close(fd)
            browser = Browser(process, commands, answers)
            browser.call("Browser.getVersion")
            try:
                yield browser
            finally:
                with contextlib.suppress(OSError, AssertionError):
                    browser.call("Browser.close")
                with contextlib.suppress(subprocess.TimeoutExpired):
                    process.popen.wait(CHROMIUM_TIMEOUT)
    finally:
        for fd in opened:
            os.close(fd)


# -- durable delivery: the services and workers its tests need ---------------------------------

#: Where the durable backends' tests find their services: CI's .ci/services starts them.
SERVICES = {
    "redis": ("127.0.0.1", 6379),
    "rabbitmq": ("127.0.0.1", 5672),
    "postgresql": ("127.0.0.1", 5432),
}


def require_service(name: str) -> tuple[str, int]:
    """The address of a service a test needs; fail (never skip) when it is not answering."""
    host, port = SERVICES[name]
    try:
        socket.create_connection((host, port), timeout=2).close()
    except OSError as exc:
        raise AssertionError(
            f"{name} is not running on {host}:{port} ({exc}): the durable delivery tests need "
            "it (.ci/services starts it)"
        ) from None
    return host, port


def connections_to(port: int) -> int:
    """How many established TCP connections (IPv4) there are to ``port`` on this machine."""
    lines = Path("/proc/net/tcp").read_text().splitlines()[1:]
    established = "01"
    return sum(
        1
        for line in lines
        if int(line.split()[2].split(":")[1], 16) == port and line.split()[3] == established
    )


def celery_worker(*options: str, app: str = "durable") -> list[str]:
    """A Celery worker of the test site's app (prefork, without the cluster chatter)."""
    return python_module(
        "celery",
        f"--app=tests.reliability.testsite.{app}",
        "worker",
        "--pool=prefork",
        "--loglevel=INFO",
        "--without-gossip",
        "--without-mingle",
        "--without-heartbeat",
        *options,
    )
