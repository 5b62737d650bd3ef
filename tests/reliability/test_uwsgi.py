"""Real uWSGI processes (``--master --processes 2``) serving the test site over HTTP: after a
burst of page views and a stop, every PAGE and STATICDATA event reaches the Data API exactly
once. ``FLUSH_INTERVAL`` is a minute, so what arrives was delivered as the workers exited.

How uWSGI 2.0 ends its workers (read in its source, and seen here):

- SIGINT and SIGQUIT stop uWSGI: the master sends its workers SIGINT, and each leaves through
  C ``exit()``. SIGTERM does the same with ``--die-on-term``, or waits for requests in flight
  with the ``gracefully_kill_them_all`` hook; without either, uWSGI 2.0 takes SIGTERM as a
  *reload*: the workers exit and are replaced, and the master keeps running.
- At that ``exit()`` (and when ``--max-requests`` recycles a worker) uWSGI calls
  ``uwsgi.atexit``, then tears the interpreter down, which runs Python's ``atexit``: either
  delivers the queue. ``--skip-atexit-teardown`` skips the teardown, so only the
  ``uwsgi.atexit`` hook the app chains (``lifecycle.connect``) delivers. uWSGI calls neither in a
  worker stopped in the middle of a request, and ``--skip-atexit`` makes workers ``_exit()`` at
  once: their queues are lost.
- uWSGI forks its workers in C, without Python's at-fork handlers: the app's
  ``uwsgi.post_fork_hook`` reseeds the nonces, else both workers draw the same ones and the
  Data API drops half the events as duplicates (the tests without ``--lazy-apps``).
- From 2.0.27 on, Python threads are always on and ``--enable-threads`` changes nothing.

``KAMELEOON_TEST_UWSGI`` names another uWSGI binary to run these against (an older one, say).
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from django_kameleoon.lifecycle import THREADS_ALWAYS_ON
from django_kameleoon.testing import DataApiServer
from tests.reliability.testsite.wsgi_slow import STARTED
from tests.support import (
    RECYCLE_AFTER,
    SECRET_PAGE,
    Process,
    View,
    assert_each_view_arrived_once,
    assert_no_loss_reported,
    assert_the_retry_delivered,
    burst,
    recycle_a_worker_into_a_retry,
    serve,
    wait_until_answering,
)

UWSGI = os.environ.get("KAMELEOON_TEST_UWSGI") or shutil.which(
    "uwsgi", path=os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
)

pytestmark = [pytest.mark.slow, pytest.mark.skipif(UWSGI is None, reason="uWSGI is not installed")]

#: With ``--max-requests``: recycle a worker as soon as it reaches the count.
RECYCLE_AT_ONCE = (
    "--min-worker-lifetime=0",  # else a worker must have lived 10 s to be recycled
    # Workers recycled this fast look like a fork bomb: the master sleeps 2 s, and a stop
    # signal taken in that sleep leaves it waiting for the worker it respawns after it.
    "--forkbomb-delay=0",
)
#: What the app logs at start-up when uWSGI runs without threads (``checks.E002``).
NO_THREADS = "uWSGI runs without Python threads"
#: uWSGI's request log line: ``[pid: 123|app: 0|req: 4/7] 127.0.0.1 () {...} [...] GET /plain/``.
REQUEST_LOG = re.compile(r"^\[pid: (\d+)\|.*\] (?:GET|HEAD) /(?:plain|page)/", re.MULTILINE)


@functools.cache
def uwsgi_version() -> tuple[int, ...]:
    assert UWSGI is not None
    out = subprocess.run(
        [UWSGI, "--version"], capture_output=True, text=True, timeout=10, check=True
    ).stdout
    return tuple(int(n) for n in re.findall(r"\d+", out)[:3])


def uwsgi(*options: str, app: str = "wsgi") -> Callable[[int], list[str]]:
    """uWSGI serving the test site's WSGI app on the socket we bound, with two worker processes."""

    def argv(fd: int) -> list[str]:
        assert UWSGI is not None
        venv = [f"--virtualenv={sys.prefix}"] if sys.prefix != sys.base_prefix else []
        return [
            UWSGI,
            "--strict",  # an option this uWSGI does not know fails the test, not ignored
            f"--http-socket=fd://{fd}",
            f"--module=tests.reliability.testsite.{app}:application",
            *venv,
            "--need-app",
            "--master",
            "--processes=2",
            "--worker-reload-mercy=10",
            *options,
        ]

    return argv


def wait_until_idle(process: Process, views: list[View]) -> None:
    """Wait until uWSGI has logged every page view, and so counts no worker busy with one.

    A client has its answer a little before that, and a worker stopped while uWSGI counts it
    busy skips every exit hook: SIGINT, SIGQUIT or ``--die-on-term`` right after a burst would
    lose its queue now and then (see the test of stops in the middle of requests).
    """
    process.wait_for(
        lambda: len(REQUEST_LOG.findall(process.output())) >= len(views),
        "uWSGI to log every page view",
        timeout=10,
    )


def served_by(process: Process) -> set[str]:
    """The pids of the workers that served a tracked page, from uWSGI's request log."""
    return set(REQUEST_LOG.findall(process.output()))


def burst_on_both_workers(process: Process, paths: list[str], rounds: int = 5) -> list[View]:
    """Bursts of page views until both workers have served some, ``rounds`` at the most.

    On a busy machine one worker (a ``--lazy-apps`` one still loading the site, say) can take a
    whole burst alone; the test is about what each worker delivers, so both must have served.
    """
    views: list[View] = []
    for _ in range(rounds):
        views += burst(process.url, paths, first=len(views))
        wait_until_idle(process, views)
        if len(served_by(process)) == 2:
            break
    return views


#: SIGTERM as a graceful shutdown, through uWSGI's ``unix_signal`` hook: each worker finishes
#: the request in hand, then exits (uWSGI 2.0 has no option for it).
GRACEFUL_SIGTERM = "--hook-master-start=unix_signal:15 gracefully_kill_them_all"


@pytest.mark.parametrize(
    ("options", "sig"),
    [
        pytest.param(["--enable-threads"], signal.SIGINT, id="enable-threads"),
        pytest.param(["--enable-threads", "--lazy-apps"], signal.SIGQUIT, id="lazy-apps"),
        pytest.param(["--threads=2", "--die-on-term"], signal.SIGTERM, id="2-threads"),
        pytest.param(
            ["--threads=2", "--lazy-apps", GRACEFUL_SIGTERM],
            signal.SIGTERM,
            id="2-threads-lazy-apps-graceful",
            marks=pytest.mark.skipif(
                UWSGI is not None and uwsgi_version() < (2, 0, 27),
                reason="before 2.0.27, threaded workers ignore a graceful stop until "
                "--worker-reload-mercy runs out and they are killed, queues and all",
            ),
        ),
        # Python's atexit never runs: the uwsgi.atexit hook that the app chains delivers.
        pytest.param(
            ["--enable-threads", "--skip-atexit-teardown"],
            signal.SIGINT,
            id="skip-atexit-teardown",
        ),
    ],
)
def test_uwsgi_delivers_every_page_view_once_at_shutdown(
    data_api: DataApiServer, tmp_path: Path, options: list[str], sig: int
) -> None:
    with serve(uwsgi(*options), {"DATA_API_URL": data_api.url}, tmp_path / "log") as server:
        views = burst_on_both_workers(server, ["/plain/", SECRET_PAGE])
        assert data_api.events == [], "nothing is sent before exit (FLUSH_INTERVAL is 60 s)"
        elapsed = server.stop(sig, timeout=15)
    assert len(served_by(server)) == 2, "both workers served pages"
    assert_each_view_arrived_once(data_api, views)
    assert_no_loss_reported(server)
    assert NO_THREADS not in server.output()
    assert elapsed < 10, f"uWSGI took {elapsed:.1f} s to stop"


@pytest.mark.parametrize(
    ("stop", "delivered"),
    [
        pytest.param(GRACEFUL_SIGTERM, True, id="graceful"),
        pytest.param("--die-on-term", False, id="die-on-term"),
    ],
)
def test_uwsgi_stopped_in_the_middle_of_requests_delivers_only_if_graceful(
    data_api: DataApiServer, tmp_path: Path, stop: str, delivered: bool
) -> None:
    """A worker stopped while it serves a request skips every exit hook (``uwsgi.atexit`` and
    the teardown that runs ``atexit``), so SIGINT, SIGQUIT and SIGTERM with ``--die-on-term``
    lose the whole queue of each busy worker. A graceful stop lets it finish, then deliver.
    """
    command = uwsgi("--enable-threads", stop, app="wsgi_slow")
    with serve(command, {"DATA_API_URL": data_api.url}, tmp_path / "log") as server:
        views = burst(server.url, ["/plain/"], count=40)
        with ThreadPoolExecutor(2) as pool:  # one slow request for each worker
            slow = [pool.submit(requests.get, server.url + "/slow/", timeout=15) for _ in "ab"]
            server.wait_for(
                lambda: server.output().count(STARTED) == 2, "both workers busy", timeout=10
            )
            wait_until_idle(server, views)
            server.stop(signal.SIGTERM, timeout=15)
            answers = [f.exception() or f.result().status_code for f in slow]
    if delivered:
        assert answers == [200, 200], "both requests were served to the end"
        assert_each_view_arrived_once(data_api, views)
        assert_no_loss_reported(server)
    else:
        assert all(isinstance(a, requests.ConnectionError) for a in answers), answers
        assert data_api.events == [], "the workers exited without a word: nothing delivered"


@pytest.mark.skipif(
    UWSGI is None or uwsgi_version() >= (2, 1), reason="uWSGI 2.0 reloads on SIGTERM"
)
def test_uwsgi_sigterm_without_die_on_term_reloads_and_the_old_workers_deliver(
    data_api: DataApiServer, tmp_path: Path
) -> None:
    """Where ``docker stop`` lands without ``--die-on-term``: nothing is lost, nothing stops."""
    with serve(
        uwsgi("--enable-threads"), {"DATA_API_URL": data_api.url}, tmp_path / "log"
    ) as server:
        views = burst(server.url, ["/plain/"], count=40)
        wait_until_idle(server, views)
        server.popen.send_signal(signal.SIGTERM)
        data_api.wait_for_events(2 * len(views), timeout=30)
        wait_until_answering(server, server.url + "/api/data.json", timeout=15)
        assert server.popen.poll() is None, "the master is still running"
        views += burst(server.url, ["/plain/"], count=40, first=len(views))
        wait_until_idle(server, views)
        server.stop(signal.SIGINT, timeout=15)
    assert_each_view_arrived_once(data_api, views)
    assert_no_loss_reported(server)


def test_uwsgi_workers_recycled_by_max_requests_deliver_as_they_go(
    data_api: DataApiServer, tmp_path: Path
) -> None:
    options = uwsgi(
        "--enable-threads",
        "--max-requests=20",
        *RECYCLE_AT_ONCE,
    )
    with serve(options, {"DATA_API_URL": data_api.url}, tmp_path / "log") as server:
        views = burst(server.url, ["/plain/"], count=60)
        # No worker serves more than 20 requests, so at least 60 - 2 * 19 of the views were
        # made by workers already recycled: their events arrive without any signal.
        data_api.wait_for_events(2 * (60 - 2 * 19), timeout=15)
        wait_until_idle(server, views)
        server.stop(signal.SIGINT, timeout=15)
    assert server.output().count("The work of process") >= 2
    assert_each_view_arrived_once(data_api, views)
    assert_no_loss_reported(server)


def test_uwsgi_stop_lets_a_recycled_worker_finish_its_delivery(
    data_api: DataApiServer, tmp_path: Path
) -> None:
    """A stop sends SIGINT to every worker, one recycled a moment before included: uWSGI's
    handler calls C ``exit()``, which ended that worker's exit delivery without a word.
    """
    options = uwsgi(
        "--enable-threads",
        f"--max-requests={RECYCLE_AFTER}",
        *RECYCLE_AT_ONCE,
    )
    with serve(options, {"DATA_API_URL": data_api.url}, tmp_path / "log") as server:
        views = recycle_a_worker_into_a_retry(server, data_api)
        server.stop(signal.SIGINT, timeout=15)
    assert_each_view_arrived_once(data_api, views)
    assert_the_retry_delivered(server)


def test_uwsgi_without_enable_threads_warns_before_2_0_27_where_events_wait_for_the_exit(
    data_api: DataApiServer, tmp_path: Path
) -> None:
    """Without ``--enable-threads``, uWSGI before 2.0.27 holds the GIL while a worker waits
    for requests: the sender thread runs only while a request is served and at exit, so the
    app logs E002 at start-up, events wait in memory, and a graceful stop still delivers them
    (a killed worker would lose them). From 2.0.27 threads are always on: no E002, and events
    are delivered while the site runs, as with ``--enable-threads``.
    """
    settings = {"DATA_API_URL": data_api.url, "FLUSH_INTERVAL": 1.0}
    threads_on = uwsgi_version() >= THREADS_ALWAYS_ON
    with serve(uwsgi(), settings, tmp_path / "log") as server:
        views = burst(server.url, ["/plain/"], count=40)
        if threads_on:
            data_api.wait_for_events(2 * len(views), timeout=30)
        else:  # the sender starves while idle: not all of it comes in two FLUSH_INTERVALs
            with pytest.raises(AssertionError, match="waited"):
                data_api.wait_for_events(2 * len(views), timeout=2.5)
        wait_until_idle(server, views)
        server.stop(signal.SIGINT, timeout=15)
    assert_each_view_arrived_once(data_api, views)
    if threads_on:
        assert NO_THREADS not in server.output()
        assert_no_loss_reported(server)
    else:
        assert NO_THREADS in server.output()
        assert "event(s) dropped" not in server.output()
