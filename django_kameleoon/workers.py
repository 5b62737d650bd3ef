"""Delivering what a worker process has queued when it stops, however its server stops it.

The threaded backend delivers its queue at interpreter exit (``atexit``), within
``SHUTDOWN_TIMEOUT``. That covers scripts, ``runserver``, gunicorn's sync and gthread workers
(stopped by SIGTERM or recycled by ``--max-requests``: they leave through ``sys.exit``) and
Celery's main process. Two common servers end their processes without ``atexit``:

- **Celery's prefork pool**: each child leaves through ``os._exit()``. The app connects
  :func:`deliver_pending` to Celery's ``worker_process_shutdown`` signal in ``AppConfig.ready``
  when Celery is installed (:func:`connect`), so nothing needs configuring.
- **uvicorn** (and gunicorn's ``UvicornWorker``): after a graceful shutdown it re-raises the
  SIGTERM it caught with the default handler, so the process dies by the signal. It does send
  the ASGI *lifespan* shutdown event first, which Django's own ASGI handler does not take; wrap
  the application to have the queue delivered then::

      # asgi.py
      from django.core.asgi import get_asgi_application
      from django_kameleoon.workers import deliver_on_shutdown

      application = deliver_on_shutdown(get_asgi_application())

For any other lifecycle (a custom process manager, gunicorn's ``worker_exit`` hook, a
long-running management command), call :func:`deliver_pending` where the process stops.

What no hook can save: events still in memory when a process is killed outright (SIGKILL, the
OOM killer, a server's own hard timeout) are lost.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

__all__ = ["connect", "deliver_on_shutdown", "deliver_pending"]

logger = logging.getLogger("django_kameleoon")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
#: Any ASGI application: Django's ``ASGIHandler`` and other frameworks' apps type their
#: arguments each a little differently, so only "an async callable" is required here.
ASGIApp = Callable[..., Awaitable[None]]


def deliver_pending(timeout: float | None = None, **kwargs: Any) -> None:
    """Deliver this process's queued events within ``timeout`` (default ``SHUTDOWN_TIMEOUT``).

    The backend is closed and forgotten: an event tracked afterwards starts a fresh one, which
    ``atexit`` delivers if the process still gets there. Extra keyword arguments are accepted
    (and ignored) so that this can be connected to signals directly.
    """
    from django_kameleoon.backends import reset_backend

    reset_backend(timeout)


def connect() -> None:
    """Connect :func:`deliver_pending` to the worker signals of the task queues installed.

    Called from ``AppConfig.ready``; does nothing when Celery is not installed.
    """
    try:
        signals = importlib.import_module("celery.signals")
    except ImportError:
        return
    signals.worker_process_shutdown.connect(
        _celery_child_stops, weak=False, dispatch_uid="django_kameleoon.deliver_pending"
    )


def _celery_child_stops(**kwargs: Any) -> None:
    # The child exits through os._exit() right after this: atexit will not run.
    deliver_pending()


def deliver_on_shutdown(application: ASGIApp) -> ASGIApp:
    """Wrap an ASGI application so that the ``lifespan`` shutdown event delivers the queue.

    HTTP and websocket connections go to ``application`` unchanged; the lifespan protocol is
    answered here (startup at once, shutdown once the queue is delivered or given up), so
    servers that run it (uvicorn, hypercorn) no longer log that the application lacks it.
    """

    async def wrapped(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "lifespan":
            await application(scope, receive, send)
            return
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                # Off the event loop: delivery blocks for up to SHUTDOWN_TIMEOUT.
                await asyncio.get_running_loop().run_in_executor(None, deliver_pending)
                await send({"type": "lifespan.shutdown.complete"})
                return

    return wrapped
