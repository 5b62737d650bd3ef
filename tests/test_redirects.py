"""Redirects are never followed with the events (issue 10, item 7): ``requests`` would re-send a
301/302 POST as a GET without the body, and a 200 from the target would count the events as
delivered. A redirect is a configuration error: dropped as ``redirect``, logged at ERROR with
the target, and the deployment check fails.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from io import StringIO
from typing import Any

import pytest
from django.core.management import CommandError, call_command

import django_kameleoon
from django_kameleoon.testing import DataApiServer
from tests.support import Configure

REDIRECTS = [301, 302, 307, 308]


class _Anything(BaseHTTPRequestHandler):
    """A site's home page: 200 to any request (what a moved domain often redirects to)."""

    def do_GET(self) -> None:
        self.server.seen.append(f"{self.command} {self.path}")  # type: ignore[attr-defined]
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    do_POST = do_HEAD = do_GET

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def target() -> Iterator[ThreadingHTTPServer]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Anything)
    server.seen = []  # type: ignore[attr-defined]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()


def location(server: ThreadingHTTPServer) -> str:
    return f"http://127.0.0.1:{server.server_address[1]}/visit/events"


@pytest.mark.parametrize("status", REDIRECTS)
def test_a_redirect_drops_the_batch_and_logs_the_target_at_error(
    kameleoon: Configure,
    data_api: DataApiServer,
    target: ThreadingHTTPServer,
    dropped: list[dict[str, Any]],
    caplog: pytest.LogCaptureFixture,
    status: int,
) -> None:
    data_api.fail(status, headers={"Location": location(target)})
    caplog.set_level(logging.WARNING, logger="django_kameleoon")
    for i in range(3):
        django_kameleoon.track_conversion(f"v{i}", 5)
    assert django_kameleoon.flush(10)
    assert target.seen == []  # type: ignore[attr-defined]
    assert len(data_api.requests) == 1 and data_api.events == []
    assert dropped == [{"count": 3, "reason": "redirect"}]
    assert django_kameleoon.stats()["sent"] == 0
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and "3 event(s) dropped (redirect)" in errors[0], errors
    assert f"HTTP {status} redirect to {location(target)}" in errors[0]


@pytest.mark.parametrize("status", REDIRECTS)
def test_the_deployment_check_fails_on_a_redirect_and_names_the_target(
    kameleoon: Configure, data_api: DataApiServer, target: ThreadingHTTPServer, status: int
) -> None:
    data_api.fail(status, headers={"Location": location(target)})
    out = StringIO()
    with pytest.raises(CommandError, match=f"HTTP {status} redirect to {location(target)}"):
        call_command("kameleoon_send_test_event", stdout=out)
    assert "Delivered" not in out.getvalue()
    assert target.seen == []  # type: ignore[attr-defined]
