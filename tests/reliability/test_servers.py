"""Real gunicorn and uvicorn processes serving a Django site: after a burst of page views and a
SIGTERM (or gunicorn's quick-shutdown SIGQUIT), every PAGE and STATICDATA event reaches the
Data API exactly once, with secret query parameters redacted.

``FLUSH_INTERVAL`` is a minute, so nothing is sent while the site runs: the events arrive only
because each worker delivers its queue when it exits, whether it is stopped by the master or
recycled after ``--max-requests``. gunicorn's workers leave through ``sys.exit``, so ``atexit``
does it; uvicorn's die by the SIGTERM they re-raise, so the ASGI lifespan hook does
(``lifecycle.deliver_on_shutdown``). The last test has the API hang at shutdown instead.
"""

from __future__ import annotations

import itertools
import re
import signal
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from gunicorn import version_info as GUNICORN_VERSION

from django_kameleoon.testing import DataApiServer
from tests.reliability.processes import CHROME, Process, python_module, serve

pytestmark = pytest.mark.slow

PAGE_VIEWS = 120
COOKIE = "kameleoonVisitorCode"
#: Secrets in the page's query string and in the referrer: REDACT_QUERY_PARAMS drops them.
SECRET_PAGE = "/page/?q=shoes&token=s3cret&userEmail=a%40b.c"
REFERRER = "https://mail.example/reset?password=hunter2&lang=fr"


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
            "Referer": REFERRER,
        },
        timeout=15,
    )
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"].startswith("text/html")
    if cookies:
        assert COOKIE not in response.cookies  # a valid cookie is kept, not set again
        return View(cookies[COOKIE], new=False)
    return View(response.cookies[COOKIE], new=True)


def burst(base_url: str, paths: list[str], count: int = PAGE_VIEWS) -> list[View]:
    """``count`` page views over real HTTP from 8 concurrent clients, cycling through ``paths``."""
    urls = [base_url + path for path in itertools.islice(itertools.cycle(paths), count)]
    with ThreadPoolExecutor(8) as pool:
        return list(pool.map(view_page, urls, range(count)))


def assert_each_view_arrived_once(data_api: DataApiServer, views: list[View]) -> None:
    codes = Counter(view.visitor_code for view in views)
    assert len(codes) == len(views), "every page view was made under its own visitor code"
    events = data_api.wait_for_events(2 * len(views), timeout=10)
    by_type = Counter(event["eventType"] for event in events)
    assert by_type == {"PAGE": len(views), "STATICDATA": len(views)}
    for event_type in ("PAGE", "STATICDATA"):
        received = Counter(e["visitorCode"] for e in events if e["eventType"] == event_type)
        assert received == codes, f"{event_type} events do not match the page views one to one"
    assert data_api.duplicates == []
    static = next(e for e in events if e["eventType"] == "STATICDATA")
    assert (static["browser"], static["localeLanguageTag"]) == ("Chrome", "fr-CH")
    for page in (e for e in events if e["eventType"] == "PAGE"):
        assert page["referrerHref"] == "https://mail.example/reset?lang=fr"
        assert "s3cret" not in page["href"] and "a%40b.c" not in page["href"], page["href"]


#: gunicorn 25.1+ opens a control socket in ~/.gunicorn unless told not to.
NO_CONTROL_SOCKET = ["--no-control-socket"] if GUNICORN_VERSION >= (25, 1) else []


def gunicorn(*options: str, app: str = "wsgi") -> Callable[[int], list[str]]:
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


@pytest.mark.parametrize(
    ("options", "sig"),
    [
        pytest.param(["--preload", "-w", "2"], signal.SIGTERM, id="preload-2-workers"),
        pytest.param(
            ["--preload", "-w", "2", "--threads", "4"],
            signal.SIGTERM,
            id="preload-2-workers-4-threads",
        ),
        # SIGQUIT (and SIGINT) is gunicorn's quick shutdown: workers exit from a signal handler.
        pytest.param(["-w", "2"], signal.SIGQUIT, id="2-workers-quick-shutdown"),
    ],
)
def test_gunicorn_delivers_every_page_view_once_at_shutdown(
    data_api: DataApiServer, tmp_path: Path, options: list[str], sig: int
) -> None:
    with serve(gunicorn(*options), {"DATA_API_URL": data_api.url}, tmp_path / "log") as server:
        views = burst(server.url, ["/plain/", SECRET_PAGE])
        assert data_api.events == [], "nothing is sent before exit (FLUSH_INTERVAL is 60 s)"
        elapsed = server.stop(sig, timeout=15)
    assert_each_view_arrived_once(data_api, views)
    assert_no_loss_reported(server)
    assert elapsed < 10, f"gunicorn took {elapsed:.1f} s to stop"


def test_gunicorn_workers_recycled_by_max_requests_deliver_as_they_go(
    data_api: DataApiServer, tmp_path: Path
) -> None:
    options = gunicorn("-w", "2", "--max-requests", "25")
    with serve(options, {"DATA_API_URL": data_api.url}, tmp_path / "log") as server:
        views = burst(server.url, ["/plain/"])
        # No worker serves more than 25 requests, so at least 120 - 2 * 24 of the views were
        # made by workers already recycled: their events arrive without any SIGTERM.
        data_api.wait_for_events(2 * (PAGE_VIEWS - 2 * 24), timeout=15)
        server.stop(timeout=15)
    assert server.output().count("Autorestarting worker") >= 3  # 25 k + (at most 2 x 24) = 120
    assert_each_view_arrived_once(data_api, views)
    assert_no_loss_reported(server)


@pytest.mark.parametrize(
    "command",
    [
        pytest.param(uvicorn(), id="uvicorn"),
        pytest.param(uvicorn("--workers", "2"), id="uvicorn-2-workers"),
        pytest.param(
            gunicorn("-w", "2", "-k", "uvicorn.workers.UvicornWorker", app="asgi"),
            id="gunicorn-uvicorn-workers",
        ),
    ],
)
def test_asgi_servers_deliver_every_page_view_once_at_sigterm(
    data_api: DataApiServer, tmp_path: Path, command: Callable[[int], list[str]]
) -> None:
    """The async middleware path. uvicorn kills its processes with the SIGTERM it re-raises
    after a graceful shutdown, so atexit never runs: the site's ASGI application is wrapped in
    ``lifecycle.deliver_on_shutdown``, and the lifespan shutdown event delivers the queue.
    """
    with serve(command, {"DATA_API_URL": data_api.url}, tmp_path / "log") as server:
        views = burst(server.url, ["/plain/", "/async/page/", SECRET_PAGE])
        assert data_api.events == []
        elapsed = server.stop(timeout=15)
    assert_each_view_arrived_once(data_api, views)
    assert_no_loss_reported(server)
    assert elapsed < 10, f"uvicorn took {elapsed:.1f} s to stop"


def test_gunicorn_with_the_api_hanging_stops_within_the_shutdown_timeout(
    data_api: DataApiServer, tmp_path: Path
) -> None:
    """Workers give up after SHUTDOWN_TIMEOUT, say what they lost, and the master exits."""
    settings = {"DATA_API_URL": data_api.url, "SHUTDOWN_TIMEOUT": 2.0, "TIMEOUT": 30.0}
    with serve(gunicorn("--preload", "-w", "2"), settings, tmp_path / "log") as server:
        views = burst(server.url, ["/plain/"], count=40)
        data_api.delay(60, times=100)  # every POST hangs: connections open, no answer
        elapsed = server.stop(timeout=15)
    assert elapsed < 2.0 + 2.5, f"gunicorn took {elapsed:.1f} s to stop with the API hanging"
    lost = [int(n) for n in _numbers_lost(server.output())]
    assert sum(lost) == 2 * len(views), server.output()
    data_api.reset()  # the hanging requests may or may not have been recorded


def _numbers_lost(output: str) -> list[str]:
    return re.findall(r"(\d+) event\(s\) could not be delivered", output)


def assert_no_loss_reported(process: Process) -> None:
    """The library logged no warning or error, and appears in no traceback.

    (gunicorn's quick shutdown may print a traceback of its own: a worker leaves through
    ``sys.exit`` from a signal handler, interrupting whatever it was doing.)
    """
    output = process.output()
    assert not re.search(r"(WARNING|ERROR|CRITICAL) django_kameleoon", output), output
    assert "django_kameleoon/" not in output, output
