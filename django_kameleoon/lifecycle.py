"""The life of a process around its backends: forks, exits, and the servers that manage both.

Everything that depends on how a process is born or ends lives here, in one place:

- **Forks.** A forked child must draw nonces of its own (the Data API drops an event whose
  nonce it has seen) and must not deliver its parent's queue (the parent does).
  :func:`after_fork_in_child` reseeds the nonces and calls every backend's ``after_fork()``;
  it runs after every ``os.fork()``, and from the uWSGI hook below where a server forks in C.
- **Exits.** Every backend is closed at interpreter exit (``atexit``), delivering what it holds
  within ``SHUTDOWN_TIMEOUT``; :func:`deliver_pending` does the same on demand. A process
  delivering as it exits ignores the stop signals (:data:`STOP_SIGNALS`): a worker recycled a
  moment before its server stops gets the server's stop signal too, which would cut the
  delivery short. The sender thread never takes them
  (:func:`keep_stop_signals_off_this_thread`).
- **Servers** that do not reach ``atexit``, described below, and uWSGI's thread setting
  (:func:`uwsgi_threads_problem`, reported by a system check and at start-up).

Backends register themselves (:func:`register`) when they are made, so this module needs to
know nothing of them but ``after_fork()`` and ``close()``.

Delivery at ``atexit`` covers scripts, gunicorn's sync and gthread workers (stopped by SIGTERM
or recycled by ``--max-requests``: they leave through ``sys.exit``) and Celery's main process.
``runserver`` is covered on Ctrl-C, and on SIGTERM as far as it can be:

- ``runserver --noreload`` has no SIGTERM handler, so SIGTERM would end it without ``atexit``:
  :func:`connect` makes SIGTERM a normal exit there (:func:`_exit_normally_on_sigterm`), as
  Django's autoreloader does in the processes it runs;
- with the autoreloader (the default), SIGTERM reaches the watching parent, which kills the
  serving child with SIGKILL at once: nothing in the child can deliver, and no app code runs
  in the parent after Django installs its handler. Ctrl-C reaches both, and the parent waits a
  quarter of a second for the child, which then delivers at ``atexit``.

Two common servers end their processes without ``atexit``:

- **Celery's prefork pool**: each child leaves through ``os._exit()``. The app connects
  :func:`deliver_pending` to Celery's ``worker_process_shutdown`` signal in ``AppConfig.ready``
  when Celery is installed (:func:`connect`), so nothing needs configuring.
- **uvicorn** (and gunicorn's ``UvicornWorker``): after a graceful shutdown it re-raises the
  SIGTERM it caught with the default handler, so the process dies by the signal. It does send
  the ASGI *lifespan* shutdown event first, which Django's own ASGI handler does not take; wrap
  the application to have the queue delivered then::

      # asgi.py
      from django.core.asgi import get_asgi_application
      from django_kameleoon.lifecycle import deliver_on_shutdown

      application = deliver_on_shutdown(get_asgi_application())

**uWSGI** runs ``atexit`` in a worker that exits or is recycled (SIGINT, SIGQUIT, SIGTERM with
``--die-on-term``, a reload, ``--max-requests``), except one stopped in the middle of a
request, which skips every exit hook (a graceful stop lets it finish first). It needs two hooks
that the app installs on the ``uwsgi`` module in ``AppConfig.ready`` (:func:`connect`), chained
to any already there:

- ``uwsgi.post_fork_hook``: uWSGI forks its workers in C, so the handlers registered with
  ``os.register_at_fork`` do not run (unless ``--py-call-osafterfork``). Without the hook,
  every worker forked from one master would draw the same nonces, and the Data API drops an
  event whose nonce it has seen: :func:`after_fork_in_child` does what they do.
- ``uwsgi.atexit``: with ``--skip-atexit-teardown``, uWSGI skips the interpreter teardown
  that runs ``atexit``, but still calls ``uwsgi.atexit``, which delivers the queue.

Code that later *replaces* either attribute without calling the one it found (importing
``uwsgidecorators`` after Django is set up does, for ``post_fork_hook``) undoes this; import
it before ``get_wsgi_application()``, or run uWSGI with ``--lazy-apps``.

For any other lifecycle (a custom process manager, gunicorn's ``worker_exit`` hook, a
long-running management command), call :func:`deliver_pending` where the process stops.

What no hook can save: events still in memory when a process is killed outright (SIGKILL, the
OOM killer, a server's own hard timeout) are lost.
"""

from __future__ import annotations

import asyncio
import atexit
import importlib
import logging
import os
import signal
import sys
import threading
import weakref
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, Protocol

from django_kameleoon.events import reseed_nonces

__all__ = [
    "THREADS_ALWAYS_ON",
    "after_fork_in_child",
    "connect",
    "deliver_on_shutdown",
    "deliver_pending",
    "register",
    "uwsgi_threads_problem",
]

logger = logging.getLogger("django_kameleoon")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
#: Any ASGI application: Django's ``ASGIHandler`` and other frameworks' apps type their
#: arguments each a little differently, so only "an async callable" is required here.
ASGIApp = Callable[..., Awaitable[None]]

#: From this version on, uWSGI always runs Python threads: ``--enable-threads`` changes nothing.
THREADS_ALWAYS_ON = (2, 0, 27)

#: The signals servers send a worker to stop it (uWSGI: all four; gunicorn: SIGTERM, SIGQUIT,
#: SIGINT). A handler written in C (uWSGI's) runs on whichever thread the kernel picks.
STOP_SIGNALS = frozenset(
    getattr(signal, name)
    for name in ("SIGINT", "SIGTERM", "SIGQUIT", "SIGHUP")
    if hasattr(signal, name)
)


class Managed(Protocol):
    """What this module needs of a backend."""

    def after_fork(self) -> None: ...

    def close(self, timeout: float | None = None) -> None: ...


#: Every backend of this process; weak, so a backend nobody uses any more is simply forgotten.
_backends: weakref.WeakSet[Any] = weakref.WeakSet()


def register(backend: Managed) -> None:
    """Have ``backend`` told of forks and closed at exit; ``BaseBackend.__init__`` calls it."""
    _backends.add(backend)


def after_fork_in_child() -> None:
    """In a forked child: draw nonces of its own, and have every backend forget its parent's
    queue (the parent still delivers it).

    Runs after every ``os.fork()``; the uWSGI hook and the threaded backend's pid check run it
    where a server forks without Python's at-fork handlers.
    """
    reseed_nonces()
    for backend in list(_backends):
        backend.after_fork()


def keep_stop_signals_off_this_thread() -> None:
    """Have the kernel give :data:`STOP_SIGNALS` to another thread than this one.

    For the sender thread: a signal handler written in C runs on the thread it interrupts, and
    uWSGI's calls ``exit()`` there, which would have the exit hooks run on the sender thread
    and wait for it. Python's own handlers run on the main thread wherever the signal lands.
    A no-op on the main OS thread, which must keep them: gevent runs its "threads" there as
    greenlets, the sender among them. Also a no-op where threads have no signal masks (Windows).
    """
    if hasattr(signal, "pthread_sigmask") and (
        threading.get_native_id() != threading.main_thread().native_id
    ):
        signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)


def deliver_pending(timeout: float | None = None, **kwargs: Any) -> None:
    """Deliver this process's queued events within ``timeout`` (default ``SHUTDOWN_TIMEOUT``).

    Every backend is closed; ``get_backend()`` makes a fresh one for an event tracked
    afterwards, which ``atexit`` delivers if the process still gets there. Extra keyword
    arguments are accepted (and ignored) so that this can be connected to signals directly.
    """
    for backend in list(_backends):
        backend.close(timeout)


def _deliver_at_exit() -> None:
    """Deliver as the process exits, deaf to the stop signals from then on.

    Exiting already, the process has nothing left for them to do but cut the delivery short:
    a server's quick stop reaching a worker it recycled a moment before (gunicorn's SIGQUIT
    raises ``SystemExit`` in the middle of ``close()``), or uWSGI's master stopping (its
    handler calls C ``exit()`` again from inside ``exit()``). ``SHUTDOWN_TIMEOUT`` bounds the
    delivery, and a server's hard stop (SIGKILL) still ends a process that overstays. A process
    that never made a backend (Django's autoreloader, a command that tracked nothing) keeps its
    signals: what it runs at exit after this, a child it starts, would inherit them ignored.
    """
    if not _backends:
        return
    try:
        for signum in STOP_SIGNALS:  # for every thread, and Python's handlers as well as C's
            signal.signal(signum, signal.SIG_IGN)
    except ValueError:  # not the main thread of the main interpreter: spare this thread only
        keep_stop_signals_off_this_thread()
    deliver_pending()


atexit.register(_deliver_at_exit)
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=after_fork_in_child)


def connect() -> None:
    """Hook into the lifecycle of the worker processes of the servers and task queues installed.

    Called from ``AppConfig.ready``: connects :func:`deliver_pending` to Celery's worker
    signals when Celery is installed, chains the uWSGI hooks when running under uWSGI, and
    logs :func:`uwsgi_threads_problem` (system checks do not run inside a uWSGI worker, where
    it matters most). Connecting again changes nothing.
    """
    _connect_celery()
    _connect_uwsgi()
    if sys.argv[1:2] == ["runserver"]:  # the subcommand, as Django's ManagementUtility reads it
        _exit_normally_on_sigterm()
    problem = uwsgi_threads_problem()
    if problem:
        logger.error("Kameleoon: %s", problem)


def _connect_celery() -> None:
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


#: Set on the hooks chained onto the ``uwsgi`` module, so that they are chained only once.
_CHAINED = "_django_kameleoon"


def _connect_uwsgi() -> None:
    try:
        uwsgi = importlib.import_module("uwsgi")  # exists only inside uWSGI's processes
    except ImportError:
        return
    # Ours first after a fork, before anything else can track an event; last at exit, after
    # the site's own hook, which may track one.
    _chain(uwsgi, "post_fork_hook", after_fork_in_child, ours_first=True)
    _chain(uwsgi, "atexit", _deliver_at_exit, ours_first=False)


def _chain(module: Any, name: str, ours: Callable[[], None], *, ours_first: bool) -> None:
    """Set ``module.name`` to a hook that calls ``ours`` and the hook already there, if any."""
    found: Callable[[], None] | None = getattr(module, name, None)
    if getattr(found, _CHAINED, False):
        return
    first, then = (ours, found) if ours_first else (found, ours)

    def hook() -> None:
        try:
            if first is not None:
                first()
        finally:
            if then is not None:
                then()

    setattr(hook, _CHAINED, True)
    setattr(module, name, hook)


def _exit_normally_on_sigterm() -> None:
    """Make SIGTERM a normal exit (``sys.exit(0)``, so ``atexit`` delivers the queue), if it
    would otherwise kill the process outright.

    Only where SIGTERM has its default action: a handler already there (the site's own,
    Django's autoreloader's, a server's) is left alone, and one installed later replaces this
    one, as it would the default. Handlers can only be set from the main thread.
    """
    if threading.current_thread() is not threading.main_thread():
        return
    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _exit_on_signal)


def _exit_on_signal(signum: int, frame: object) -> None:
    sys.exit(0)


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


def uwsgi_threads_problem() -> str | None:
    """A description of the problem when running under uWSGI with threads off, else None.

    Reported by the system check ``E002`` and, at start-up, by :func:`connect`.
    """
    try:
        uwsgi = importlib.import_module("uwsgi")
    except ImportError:
        return None
    if _uwsgi_version(uwsgi) >= THREADS_ALWAYS_ON:
        return None
    options = getattr(uwsgi, "opt", None) or {}
    if _option_on(options.get("enable-threads")) or _thread_count(options.get("threads")) > 0:
        return None
    return (
        "uWSGI runs without Python threads (no --enable-threads): Kameleoon's sender thread "
        "gets to run only while a worker serves a request and when it exits, so events wait "
        "in memory, and a worker that is killed loses them."
    )


def _uwsgi_version(uwsgi: Any) -> tuple[int, ...]:
    """uWSGI's ``(major, minor, patch)``; empty when it does not say."""
    info = getattr(uwsgi, "version_info", None)
    if not isinstance(info, tuple) or not all(isinstance(n, int) for n in info[:3]):
        return ()
    return info[:3]


def _last(value: Any) -> Any:
    """uWSGI gives a list when an option is repeated; the last one wins."""
    return value[-1] if isinstance(value, list) and value else value


def _option_on(value: Any) -> bool:
    value = _last(value)
    if isinstance(value, bytes):
        value = value.decode("latin-1")
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on", "y", "t")
    return value is True


def _thread_count(value: Any) -> int:
    value = _last(value)
    if isinstance(value, bytes):
        value = value.decode("latin-1")
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0
