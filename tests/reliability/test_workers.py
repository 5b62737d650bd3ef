"""The lifecycle hooks of ``django_kameleoon.workers``, in process (the real servers that need
them are in ``test_servers.py`` and ``test_celery.py``).
"""

from __future__ import annotations

import asyncio
from typing import Any

import django_kameleoon
from django_kameleoon.backends import get_backend
from django_kameleoon.testing import DataApiServer
from django_kameleoon.workers import deliver_on_shutdown
from tests.conftest import Configure


def test_lifespan_shutdown_delivers_the_queue(
    kameleoon: Configure, data_api: DataApiServer
) -> None:
    kameleoon(FLUSH_INTERVAL=60.0)
    http_scopes: list[str] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        http_scopes.append(scope["type"])

    wrapped = deliver_on_shutdown(app)

    async def server() -> list[dict[str, Any]]:
        """What uvicorn does: start-up, a request, then shutdown; returns what the app sent."""
        inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        sent: list[dict[str, Any]] = []

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        await wrapped({"type": "http"}, inbox.get, send)
        for message in ({"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}):
            inbox.put_nowait(message)
        await wrapped({"type": "lifespan"}, inbox.get, send)
        return sent

    django_kameleoon.track_conversion("at-shutdown", 12)
    assert data_api.events == []
    sent = asyncio.run(server())
    assert sent == [{"type": "lifespan.startup.complete"}, {"type": "lifespan.shutdown.complete"}]
    assert http_scopes == ["http"], "other scopes go to the application"
    assert [e["visitorCode"] for e in data_api.events] == ["at-shutdown"]
    # A fresh backend takes any event tracked afterwards.
    django_kameleoon.track_conversion("after", 12)
    assert get_backend().stats()["queued"] == 1
