"""``DataApiServer``: the stand-in's life cycle, its scripted faults and what it received.

The HTTP side (reading a request, answering it) is ``handler.py``; what the handler threads
record and tests read is one ``Recording`` (``recording.py``). This module ties them together
and gives tests their one entry point.
"""

from __future__ import annotations

import selectors
import socket
import threading
from collections.abc import Callable
from types import TracebackType
from typing import Any, Literal

from django_kameleoon.testing.handler import HttpServer
from django_kameleoon.testing.received import Fault, ReceivedRequest
from django_kameleoon.testing.recording import Recording
from django_kameleoon.testing.rules import EVENTS_PATH


class DataApiServer:
    """A real HTTP server on a local port that plays the Data API strictly. See the package doc.

    Thread-safe: requests are handled on their own threads; every read returns a copy taken
    under one lock, and waiting is on a condition, never a sleep loop.
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        site_code: str | None = None,
        on_event: Callable[[dict[str, Any]], None] | None = None,
        on_violation: Callable[[str], None] | None = None,
        on_duplicate: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.site_code = site_code
        self.on_event = on_event
        self.on_violation = on_violation
        self.on_duplicate = on_duplicate
        self._recording = Recording()
        self._httpd: HttpServer | None = None
        self._thread: threading.Thread | None = None
        self._wake_reader: socket.socket | None = None
        self._wake_writer: socket.socket | None = None

    # -- lifecycle ----------------------------------------------------------------------

    def start(self) -> DataApiServer:
        """Bind (port 0 picks a free one, kept for later restarts) and serve on a daemon thread."""
        if self._httpd is not None:
            raise RuntimeError(f"DataApiServer is already serving on {self.url}")
        httpd = HttpServer(
            (self.host, self.port),
            recording=self._recording,
            options=self,  # read on each request, so a change after start() applies
            stopping=threading.Event(),
        )
        self.port = httpd.server_address[1]
        self._httpd = httpd
        self._wake_reader, self._wake_writer = socket.socketpair()
        self._thread = threading.Thread(
            target=self._serve,
            args=(httpd, self._wake_reader),
            name=f"DataApiServer:{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop at once: close the port and every open connection, as if the API went away.

        Keeps ``port``, so a later ``start()`` comes back on the same address.
        """
        httpd, thread = self._httpd, self._thread
        if httpd is None or thread is None:
            return
        httpd.stopping.set()
        if self._wake_writer is not None:
            self._wake_writer.send(b"x")
        thread.join()
        httpd.server_close()
        httpd.cut_connections()
        for end in (self._wake_reader, self._wake_writer):
            if end is not None:
                end.close()
        self._httpd = self._thread = self._wake_reader = self._wake_writer = None

    def __enter__(self) -> DataApiServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """The base URL, without path: what ``DATA_API_URL`` should be set to."""
        if self.port == 0:
            raise RuntimeError("DataApiServer has no port until start()")
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @staticmethod
    def _serve(httpd: HttpServer, wake: socket.socket) -> None:
        # Our own loop rather than serve_forever(), whose shutdown waits out a poll interval:
        # a wake-up socket makes stop() immediate, which keeps test suites fast.
        with selectors.DefaultSelector() as selector:
            selector.register(httpd, selectors.EVENT_READ)
            selector.register(wake, selectors.EVENT_READ)
            while not httpd.stopping.is_set():
                for key, _mask in selector.select():
                    if key.fileobj is httpd and not httpd.stopping.is_set():
                        httpd.handle_request()

    # -- scripted faults ----------------------------------------------------------------

    def fail(self, status: int, *, times: int = 1, headers: dict[str, str] | None = None) -> None:
        """Answer the next ``times`` POSTs with ``status`` (and ``headers``); accept nothing."""
        if not 100 <= status <= 599:
            raise ValueError(f"status must be an HTTP status code, got {status}")
        self._add_fault(Fault("fail", status=status, headers=tuple((headers or {}).items())), times)

    def delay(self, seconds: float, *, times: int = 1) -> None:
        """Sleep ``seconds`` before handling the next ``times`` POSTs normally: a slow API."""
        if seconds < 0:
            raise ValueError(f"seconds must be >= 0, got {seconds}")
        self._add_fault(Fault("delay", seconds=seconds), times)

    def drop(self, *, times: int = 1, accept: bool = False) -> None:
        """Read the next ``times`` POSTs, then close the connection without an answer.

        By default the events are not accepted (the request died on the way in). With
        ``accept=True`` they are, and only the answer is lost: the case nonces exist for,
        where the sender's retry must land in ``duplicates``.
        """
        self._add_fault(Fault("drop", accept=accept), times)

    def _add_fault(self, fault: Fault, times: int) -> None:
        if times < 1:
            raise ValueError(f"times must be >= 1, got {times}")
        self._recording.add_faults(fault, times)

    # -- what was received --------------------------------------------------------------

    @property
    def events(self) -> list[dict[str, Any]]:
        """Accepted events, one per nonce, in arrival order, typed the same in both formats."""
        return self._recording.events

    @property
    def duplicates(self) -> list[dict[str, Any]]:
        """Events whose nonce had already been accepted: a retry after a lost answer."""
        return self._recording.duplicates

    @property
    def requests(self) -> list[ReceivedRequest]:
        """Every request, answered or not, in arrival order."""
        return self._recording.requests

    @property
    def violations(self) -> list[str]:
        """Every broken rule, human readable. Empty means the sender did everything right."""
        return self._recording.violations

    def wait_for_events(self, count: int, timeout: float = 10.0) -> list[dict[str, Any]]:
        """Block until at least ``count`` events were accepted; AssertionError at the deadline."""
        self._wait(count, "events", timeout)
        return self.events

    def wait_for_requests(self, count: int, timeout: float = 10.0) -> list[ReceivedRequest]:
        """Block until at least ``count`` requests arrived; AssertionError at the deadline."""
        self._wait(count, "requests", timeout)
        return self.requests

    def _wait(self, count: int, what: Literal["events", "requests"], timeout: float) -> None:
        if not self._recording.wait(count, what, timeout):
            raise AssertionError(
                f"waited {timeout}s for {count} {what} at {self.url}{EVENTS_PATH}, got "
                f"{self._recording.summary()}"
            )

    def reset(self) -> None:
        """Forget everything received and every pending fault, for the next test."""
        self._recording.reset()
