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

import re
import signal
from collections.abc import Callable
from pathlib import Path

import pytest

from django_kameleoon.testing import DataApiServer
from tests.support import (
    PAGE_VIEWS,
    RECYCLE_AFTER,
    SECRET_PAGE,
    assert_each_view_arrived_once,
    assert_no_loss_reported,
    assert_the_retry_delivered,
    burst,
    gunicorn,
    recycle_a_worker_into_a_retry,
    serve,
    uvicorn,
)

pytestmark = pytest.mark.slow


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


def test_gunicorn_quick_shutdown_lets_a_recycled_worker_finish_its_delivery(
    data_api: DataApiServer, tmp_path: Path
) -> None:
    """gunicorn's quick shutdown (SIGQUIT, or SIGINT to the master) sends SIGQUIT to every
    worker, one recycled a moment before included; its handler raised ``SystemExit`` in the
    middle of that worker's exit delivery, which lost the queue with only a traceback.
    """
    options = gunicorn("-w", "2", "--max-requests", str(RECYCLE_AFTER))
    with serve(options, {"DATA_API_URL": data_api.url}, tmp_path / "log") as server:
        views = recycle_a_worker_into_a_retry(server, data_api)
        server.stop(signal.SIGQUIT, timeout=15)
    assert_each_view_arrived_once(data_api, views)
    assert_the_retry_delivered(server)


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
    return re.findall(r"(\d+) event\(s\) dropped \(shutdown_timeout\)", output)
