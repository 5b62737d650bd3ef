"""Whether the code running now serves a request: the request path never waits, other code may.

A script or management command that tracks 90,000 conversions in a loop fills the queue faster
than the sender empties it; dropping what does not fit would lose events although the API is up.
So code that serves no request waits for room in the queue (up to ``FLUSH_TIMEOUT``), while a
request never waits. "Serving a request" is a context variable, so it holds per thread under
WSGI and per task under ASGI (and in the threads ``sync_to_async`` runs a sync view in). It is
set by the middleware around every request, and by Django's ``request_started`` and
``request_finished`` signals for sites whose views run without the middleware.
"""

from __future__ import annotations

from contextvars import ContextVar, Token
from types import TracebackType
from typing import Any

from django.core.signals import request_finished, request_started

__all__ = ["SERVING", "connect", "in_request", "serving_request"]

#: True while the current thread (or task) serves a request; the middleware sets and resets it
#: itself around every request (a ``with serving_request()`` costs more than the two calls).
SERVING: ContextVar[bool] = ContextVar("django_kameleoon_serving", default=False)


def in_request() -> bool:
    """True while the current thread (or task) serves a request."""
    return SERVING.get()


class serving_request:  # lower case: used like the function it replaced, `with serving_request():`
    """Mark the code inside as serving a request: tracking there never waits for the queue.

    A class rather than a ``@contextmanager`` generator: it wraps every request, and a
    generator costs five times as much to enter and leave.
    """

    __slots__ = ("_token",)

    def __enter__(self) -> None:
        self._token: Token[bool] = SERVING.set(True)

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        SERVING.reset(self._token)


def _started(**kwargs: Any) -> None:
    SERVING.set(True)


def _finished(**kwargs: Any) -> None:
    SERVING.set(False)


def connect() -> None:
    """Follow Django's request signals; ``AppConfig.ready`` calls it (again changes nothing)."""
    request_started.connect(_started, dispatch_uid="django_kameleoon.scope.started")
    request_finished.connect(_finished, dispatch_uid="django_kameleoon.scope.finished")
