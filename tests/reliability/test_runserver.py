"""``manage.py runserver`` as a real process, stopped as a process manager or a terminal does.

The test site runs under ``python -m django runserver`` (what ``manage.py`` runs) with
``FLUSH_INTERVAL`` at 60 s, so everything the strict local Data API receives was delivered as
the process stopped. Each test makes 50 page views over real HTTP first.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from django_kameleoon.testing import DataApiServer
from tests.support import (
    Process,
    assert_each_view_arrived_once,
    assert_no_loss_reported,
    burst,
    free_port,
    python_module,
    site_environment,
    spawn,
    wait_until_answering,
)

pytestmark = pytest.mark.slow

VIEWS = 50


@contextmanager
def runserver(data_api: DataApiServer, log: Path, *options: str) -> Iterator[Process]:
    """runserver on a free port (it binds its own: no socket can be handed to it)."""
    port = free_port()
    argv = python_module("django", "runserver", *options, f"127.0.0.1:{port}")
    environment = site_environment({"DATA_API_URL": data_api.url})
    with spawn(argv, log, env=environment) as process:
        process.url = f"http://127.0.0.1:{port}"
        wait_until_answering(process, process.url + "/api/data.json", timeout=60)
        yield process


def test_sigterm_delivers_the_queue_of_runserver_without_the_reloader(
    data_api: DataApiServer, tmp_path: Path
) -> None:
    """What a container or a process manager does: SIGTERM to ``runserver --noreload``."""
    with runserver(data_api, tmp_path / "runserver.log", "--noreload") as server:
        views = burst(server.url, ["/page/"], VIEWS)
        assert data_api.events == []
        server.stop(signal.SIGTERM, timeout=20)
    assert_each_view_arrived_once(data_api, views)
    assert_no_loss_reported(server)
    assert server.popen.returncode == 0, "a normal exit, as Django's reloader makes on SIGTERM"


def test_ctrl_c_delivers_the_queue_of_runserver_with_the_reloader(
    data_api: DataApiServer, tmp_path: Path
) -> None:
    """Ctrl-C in a terminal reaches the reloader and the server it runs alike."""
    with runserver(data_api, tmp_path / "runserver.log") as server:
        views = burst(server.url, ["/page/"], VIEWS)
        server.stop(signal.SIGINT, timeout=20, group=True)
    assert_each_view_arrived_once(data_api, views)


def test_sigterm_to_the_reloader_loses_the_queue_as_the_readme_says(
    data_api: DataApiServer, tmp_path: Path
) -> None:
    """The documented limit: the reloader kills the server it runs outright on SIGTERM, so
    nothing in the server process can deliver. If this starts failing, Django changed: the
    README's Deployment section must say so."""
    with runserver(data_api, tmp_path / "runserver.log") as server:
        burst(server.url, ["/page/"], VIEWS)
        server.stop(signal.SIGTERM, timeout=20)
    assert data_api.requests == []
