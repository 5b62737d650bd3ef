"""The benchmark site as real servers run it: ``application`` (WSGI) and ``asgi_application``.

``benchmarks.load`` starts gunicorn or uvicorn on this module with the stack chosen in the
environment: ``BENCH_STACK`` is ``stack`` (startproject's middleware alone), ``ours`` (plus
``KameleoonMiddleware``) or ``peer`` (plus ``peer_middleware``, with an SDK client made in
each worker process), or one of ``benchmarks.profile inserver``'s variants of ours
(``timed``, ``hollow``, ``locmem``); ``BENCH_SINK`` is the local sink's URL; ``BENCH_ASYNC=1``
serves the pages from an async view. This module is also the URLconf.
"""

from __future__ import annotations

import os
import threading

from benchmarks import djsite, figures
from benchmarks.harness import guard_network

__all__ = ["application", "asgi_application", "urlpatterns"]

STACKS = {
    "stack": djsite.STARTPROJECT_MIDDLEWARE,
    "ours": djsite.with_middleware(figures.OURS),
    "peer": djsite.with_middleware(figures.PEER),
    # benchmarks.profile inserver's: ours with process() timed, with process() skipped, and
    # timed with the events kept in memory (no sender thread).
    "timed": djsite.with_middleware("benchmarks.profile.TimedMiddleware"),
    "hollow": djsite.with_middleware("benchmarks.profile.HollowMiddleware"),
    "locmem": djsite.with_middleware("benchmarks.profile.TimedMiddleware"),
}

STACK = os.environ.get("BENCH_STACK", "stack")
SINK = os.environ["BENCH_SINK"]
ASYNC = os.environ.get("BENCH_ASYNC") == "1"

urlpatterns = djsite.async_urlpatterns if ASYNC else djsite.urlpatterns

guard_network()
BACKEND = {"BACKEND": "django_kameleoon.backends.locmem.LocmemBackend"} if STACK == "locmem" else {}
djsite.configure(
    figures._kameleoon(SINK, **BACKEND), MIDDLEWARE=STACKS[STACK], ROOT_URLCONF=__name__
)

if STACK == "peer":
    from benchmarks import peer_middleware
    from benchmarks.peers import make_sdk_client

    # One SDK client per worker process, made after the fork (gunicorn loads the app in each
    # worker), as a site would; its URLs are prefixed /sdk so the sink counts them apart. It is
    # made in a thread of its own: uvicorn imports the app inside its event loop, and the SDK
    # would schedule its start-up on that loop, which waiting for it here would block.
    def _make_client() -> None:
        peer_middleware.client = make_sdk_client(SINK + "/sdk")

    maker = threading.Thread(target=_make_client)
    maker.start()
    maker.join()

if ASYNC:
    from django.core.handlers.asgi import ASGIHandler

    asgi_application = ASGIHandler()
else:
    from django.core.handlers.wsgi import WSGIHandler

    application = WSGIHandler()
