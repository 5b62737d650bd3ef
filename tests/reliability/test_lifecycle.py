"""The lifecycle hooks of ``django_kameleoon.lifecycle``, in process (the real servers that need
them are in ``test_servers.py``, ``test_uwsgi.py`` and ``test_celery.py``).
"""

from __future__ import annotations

import asyncio
import signal
import sys
import threading
import weakref
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest

import django_kameleoon
from django_kameleoon import events, lifecycle
from django_kameleoon.backends import get_backend
from django_kameleoon.lifecycle import deliver_on_shutdown
from django_kameleoon.testing import DataApiServer
from tests.support import Configure


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


@pytest.fixture
def stop_signals_restored() -> Iterator[None]:
    """The exit hooks leave the stop signals ignored, as a process that exits can: put back."""
    handlers = {signum: signal.getsignal(signum) for signum in lifecycle.STOP_SIGNALS}
    yield
    for signum, handler in handlers.items():
        signal.signal(signum, handler)


@pytest.fixture
def fake_uwsgi(monkeypatch: pytest.MonkeyPatch, stop_signals_restored: None) -> SimpleNamespace:
    """The ``uwsgi`` module as a site may have left it: with hooks of its own already set."""
    calls: list[str] = []
    module = SimpleNamespace(
        calls=calls,
        post_fork_hook=lambda: calls.append("site post_fork_hook"),
        atexit=lambda: calls.append("site atexit"),
    )
    monkeypatch.setitem(sys.modules, "uwsgi", module)
    return module


def test_exit_delivery_ignores_the_stop_signals_from_then_on(
    kameleoon: Configure, data_api: DataApiServer, stop_signals_restored: None
) -> None:
    """A stop signal can only cut an exit delivery short (tests/reliability/test_servers.py and
    test_uwsgi.py show it with real servers)."""
    kameleoon(FLUSH_INTERVAL=60.0)
    django_kameleoon.track_conversion("at-exit", 12)
    lifecycle._deliver_at_exit()
    assert [e["visitorCode"] for e in data_api.events] == ["at-exit"]
    assert {signal.getsignal(signum) for signum in lifecycle.STOP_SIGNALS} == {signal.SIG_IGN}


def test_the_main_os_thread_keeps_the_stop_signals() -> None:
    """Under gevent the sender "thread" is a greenlet on the main OS thread, which would hold
    SIGTERM off the whole worker: gunicorn's graceful stop would wait for its SIGKILL."""
    lifecycle.keep_stop_signals_off_this_thread()
    try:
        assert signal.pthread_sigmask(signal.SIG_BLOCK, []) == set()
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, lifecycle.STOP_SIGNALS)


def test_a_process_without_a_backend_keeps_its_signals_at_exit(
    monkeypatch: pytest.MonkeyPatch, stop_signals_restored: None
) -> None:
    monkeypatch.setattr(lifecycle, "_backends", weakref.WeakSet())
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    before = {signum: signal.getsignal(signum) for signum in lifecycle.STOP_SIGNALS}
    lifecycle._deliver_at_exit()
    assert {signum: signal.getsignal(signum) for signum in lifecycle.STOP_SIGNALS} == before


def test_exit_delivery_from_another_thread_still_delivers(
    kameleoon: Configure, data_api: DataApiServer
) -> None:
    """Only the main thread may set signal handlers (uWSGI can exit from a request thread):
    the others hold the stop signals off themselves, and deliver all the same."""
    kameleoon(FLUSH_INTERVAL=60.0)
    django_kameleoon.track_conversion("from-a-thread", 12)
    held: list[set[int]] = []

    def exit_in_a_thread() -> None:
        lifecycle._deliver_at_exit()
        held.append(signal.pthread_sigmask(signal.SIG_BLOCK, []))

    thread = threading.Thread(target=exit_in_a_thread)
    thread.start()
    thread.join(10)
    assert [e["visitorCode"] for e in data_api.events] == ["from-a-thread"]
    assert held == [set(lifecycle.STOP_SIGNALS)]
    assert signal.getsignal(signal.SIGINT) is not signal.SIG_IGN, "the process's are untouched"


def test_uwsgi_hooks_are_chained_to_the_sites_once(
    fake_uwsgi: SimpleNamespace, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(lifecycle, "after_fork_in_child", lambda: fake_uwsgi.calls.append("fork"))
    monkeypatch.setattr(lifecycle, "deliver_pending", lambda: fake_uwsgi.calls.append("deliver"))
    lifecycle.connect()
    lifecycle.connect()  # AppConfig.ready may run again (tests do it): nothing is chained twice
    fake_uwsgi.post_fork_hook()
    fake_uwsgi.atexit()
    # Ours first after a fork, before site code can track; last at exit, after site code did.
    assert fake_uwsgi.calls == ["fork", "site post_fork_hook", "site atexit", "deliver"]


def test_uwsgi_atexit_delivers_the_queue(
    kameleoon: Configure, data_api: DataApiServer, fake_uwsgi: SimpleNamespace
) -> None:
    """Under ``--skip-atexit-teardown`` uWSGI calls ``uwsgi.atexit`` but not Python's atexit."""
    kameleoon(FLUSH_INTERVAL=60.0)
    del fake_uwsgi.atexit
    lifecycle.connect()
    django_kameleoon.track_conversion("at-uwsgi-exit", 12)
    assert data_api.events == []
    fake_uwsgi.atexit()
    assert [e["visitorCode"] for e in data_api.events] == ["at-uwsgi-exit"]


def test_after_fork_in_child_reseeds_nonces_and_forgets_the_parents_queue(
    kameleoon: Configure,
) -> None:
    """What uWSGI's workers need: they are forked without Python's at-fork handlers."""
    kameleoon(FLUSH_INTERVAL=60.0)
    django_kameleoon.track_conversion("parent", 12)
    assert get_backend().stats()["queued"] == 1
    state = events._nonce_source.getstate()
    inherited = events.new_nonce()  # what a child forked now would draw without the hook
    events._nonce_source.setstate(state)
    lifecycle.after_fork_in_child()
    assert events.new_nonce() != inherited
    assert get_backend().stats()["queued"] == 0, "the parent delivers its own queue"


# -- runserver's SIGTERM (the real process is in test_runserver.py) ------------------------------


@pytest.fixture
def sigterm() -> Iterator[None]:
    """Put back this process's SIGTERM handler, whatever the test did to it."""
    previous = signal.getsignal(signal.SIGTERM)
    yield
    signal.signal(signal.SIGTERM, previous)


@pytest.mark.usefixtures("sigterm")
def test_only_runserver_gets_sigterm_as_a_normal_exit(monkeypatch: pytest.MonkeyPatch) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    for argv in (["manage.py", "migrate"], ["gunicorn", "mysite.wsgi"], ["manage.py"]):
        monkeypatch.setattr(sys, "argv", argv)
        lifecycle.connect()
        assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL, argv
    monkeypatch.setattr(sys, "argv", ["manage.py", "runserver", "--noreload"])
    lifecycle.connect()
    handler = signal.getsignal(signal.SIGTERM)
    assert callable(handler)
    with pytest.raises(SystemExit) as exited:
        handler(signal.SIGTERM, None)
    assert exited.value.code == 0


@pytest.mark.parametrize(
    "site_handler", [signal.SIG_IGN, lambda signum, frame: None], ids=["ignored", "own-handler"]
)
@pytest.mark.usefixtures("sigterm")
def test_a_sigterm_handler_already_set_is_left_alone(
    monkeypatch: pytest.MonkeyPatch, site_handler: Any
) -> None:
    monkeypatch.setattr(sys, "argv", ["manage.py", "runserver", "--noreload"])
    signal.signal(signal.SIGTERM, site_handler)
    lifecycle.connect()
    assert signal.getsignal(signal.SIGTERM) is site_handler
