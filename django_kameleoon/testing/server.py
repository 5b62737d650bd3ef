"""``DataApiServer``: the stand-in's life cycle, its scripted faults and what it received.

The HTTP side (reading a request, answering it) is ``handler.py``; this module owns the state
that handler threads record into and tests read from, all under one condition.
"""

from __future__ import annotations

import contextlib
import copy
import selectors
import socket
import sys
import threading
import traceback
from collections import deque
from collections.abc import Callable
from types import TracebackType
from typing import Any

from django_kameleoon.testing.body import Verdict
from django_kameleoon.testing.checks import _show
from django_kameleoon.testing.handler import _HttpServer
from django_kameleoon.testing.received import ReceivedRequest, _Fault
from django_kameleoon.testing.rules import EVENTS_PATH, Event


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
    ) -> None:
        self.host = host
        self.port = port
        self.site_code = site_code
        self.on_event = on_event
        self.on_violation = on_violation
        self._condition = threading.Condition()
        self._events: list[Event] = []
        self._by_nonce: dict[str, Event] = {}
        self._duplicates: list[Event] = []
        self._requests: list[ReceivedRequest] = []
        self._violations: list[str] = []
        self._faults: deque[_Fault] = deque()
        self._connections: set[socket.socket] = set()
        self._httpd: _HttpServer | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._wake_reader: socket.socket | None = None
        self._wake_writer: socket.socket | None = None

    # -- lifecycle ----------------------------------------------------------------------

    def start(self) -> DataApiServer:
        """Bind (port 0 picks a free one, kept for later restarts) and serve on a daemon thread."""
        if self._httpd is not None:
            raise RuntimeError(f"DataApiServer is already serving on {self.url}")
        httpd = _HttpServer((self.host, self.port), self)
        self.port = httpd.server_address[1]
        self._httpd = httpd
        self._stopping = threading.Event()
        self._wake_reader, self._wake_writer = socket.socketpair()
        self._thread = threading.Thread(
            target=self._serve,
            args=(httpd, self._wake_reader, self._stopping),
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
        self._stopping.set()
        if self._wake_writer is not None:
            self._wake_writer.send(b"x")
        thread.join()
        httpd.server_close()
        with self._condition:
            connections = list(self._connections)
        for connection in connections:  # keep-alive connections would outlive the port
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
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
    def _serve(httpd: _HttpServer, wake: socket.socket, stopping: threading.Event) -> None:
        # Our own loop rather than serve_forever(), whose shutdown waits out a poll interval:
        # a wake-up socket makes stop() immediate, which keeps test suites fast.
        with selectors.DefaultSelector() as selector:
            selector.register(httpd, selectors.EVENT_READ)
            selector.register(wake, selectors.EVENT_READ)
            while not stopping.is_set():
                for key, _mask in selector.select():
                    if key.fileobj is httpd and not stopping.is_set():
                        httpd.handle_request()

    # -- scripted faults ----------------------------------------------------------------

    def fail(self, status: int, *, times: int = 1, headers: dict[str, str] | None = None) -> None:
        """Answer the next ``times`` POSTs with ``status`` (and ``headers``); accept nothing."""
        if not 100 <= status <= 599:
            raise ValueError(f"status must be an HTTP status code, got {status}")
        self._add_fault(
            _Fault("fail", status=status, headers=tuple((headers or {}).items())), times
        )

    def delay(self, seconds: float, *, times: int = 1) -> None:
        """Sleep ``seconds`` before handling the next ``times`` POSTs normally: a slow API."""
        if seconds < 0:
            raise ValueError(f"seconds must be >= 0, got {seconds}")
        self._add_fault(_Fault("delay", seconds=seconds), times)

    def drop(self, *, times: int = 1, accept: bool = False) -> None:
        """Read the next ``times`` POSTs, then close the connection without an answer.

        By default the events are not accepted (the request died on the way in). With
        ``accept=True`` they are, and only the answer is lost: the case nonces exist for,
        where the sender's retry must land in ``duplicates``.
        """
        self._add_fault(_Fault("drop", accept=accept), times)

    def _add_fault(self, fault: _Fault, times: int) -> None:
        if times < 1:
            raise ValueError(f"times must be >= 1, got {times}")
        with self._condition:
            self._faults.extend([fault] * times)

    def _next_fault(self) -> _Fault | None:
        with self._condition:
            return self._faults.popleft() if self._faults else None

    def _pause(self, seconds: float) -> bool:
        """Wait ``seconds``; False when stop() cut the wait short (the request is then lost)."""
        stopping = self._stopping
        return not stopping.wait(seconds)

    # -- what was received --------------------------------------------------------------

    @property
    def events(self) -> list[dict[str, Any]]:
        """Accepted events, one per nonce, in arrival order, typed the same in both formats."""
        with self._condition:
            return copy.deepcopy(self._events)

    @property
    def duplicates(self) -> list[dict[str, Any]]:
        """Events whose nonce had already been accepted: a retry after a lost answer."""
        with self._condition:
            return copy.deepcopy(self._duplicates)

    @property
    def requests(self) -> list[ReceivedRequest]:
        """Every request, answered or not, in arrival order."""
        with self._condition:
            return list(self._requests)

    @property
    def violations(self) -> list[str]:
        """Every broken rule, human readable. Empty means the sender did everything right."""
        with self._condition:
            return list(self._violations)

    def wait_for_events(self, count: int, timeout: float = 10.0) -> list[dict[str, Any]]:
        """Block until at least ``count`` events were accepted; AssertionError at the deadline."""
        self._wait(lambda: len(self._events) >= count, f"{count} events", timeout)
        return self.events

    def wait_for_requests(self, count: int, timeout: float = 10.0) -> list[ReceivedRequest]:
        """Block until at least ``count`` requests arrived; AssertionError at the deadline."""
        self._wait(lambda: len(self._requests) >= count, f"{count} requests", timeout)
        return self.requests

    def _wait(self, done: Callable[[], bool], what: str, timeout: float) -> None:
        with self._condition:
            if self._condition.wait_for(done, timeout):
                return
            raise AssertionError(
                f"waited {timeout}s for {what} at {self.url}{EVENTS_PATH}, got "
                f"{len(self._events)} events ({len(self._duplicates)} duplicates) in "
                f"{len(self._requests)} requests; violations: {self._violations or 'none'}"
            )

    def reset(self) -> None:
        """Forget everything received and every pending fault, for the next test."""
        with self._condition:
            self._events.clear()
            self._by_nonce.clear()
            self._duplicates.clear()
            self._requests.clear()
            self._violations.clear()
            self._faults.clear()

    # -- recording (called from the handler threads) --------------------------------------

    def _record(self, request: ReceivedRequest, verdict: Verdict | None) -> None:
        """Store a request and, when it was accepted, its events; then tell the callbacks.

        A retried event (same nonce, same content) lands in ``duplicates`` without repeating
        its violations; a nonce reused for a different event is itself a violation.
        """
        violations = list(verdict.problems) if verdict else []
        accepted: list[Event] = []
        parsed = verdict.body if verdict and verdict.status == 202 else None
        with self._condition:
            for event, problems in parsed.events if parsed else []:
                nonce = event.get("nonce")
                original = self._by_nonce.get(nonce) if isinstance(nonce, str) else None
                if original is not None:
                    self._duplicates.append(event)
                    if original != event:
                        violations.append(
                            f"nonce {nonce} was reused for a different event: {_show(event, 200)}"
                        )
                    continue
                if isinstance(nonce, str):
                    self._by_nonce[nonce] = event
                self._events.append(event)
                accepted.append(event)
                violations += problems
            self._violations += violations
            self._requests.append(request)
            self._condition.notify_all()
        self._notify(accepted, violations)

    def _notify(self, accepted: list[Event], violations: list[str]) -> None:
        # A failing callback is the caller's bug: show it, but keep serving the sender.
        try:
            if self.on_violation is not None:
                for violation in violations:
                    self.on_violation(violation)
            if self.on_event is not None:
                for event in accepted:
                    self.on_event(copy.deepcopy(event))
        except Exception:
            traceback.print_exc(file=sys.stderr)

    def _connection_opened(self, connection: socket.socket) -> None:
        with self._condition:
            self._connections.add(connection)

    def _connection_closed(self, connection: socket.socket) -> None:
        with self._condition:
            self._connections.discard(connection)
