"""The HTTP side of the stand-in: read one request, apply any scripted fault, answer it.

Every request, on any path and with any method, is recorded in the server's ``Recording``
before it is answered, so once a client has its answer, the server already holds what it sent.

This module does not import ``server.py`` (which imports it to serve): what it needs of the
``DataApiServer`` is the ``Recording``, a ``stopping`` event, and the ``ServerOptions`` below.
"""

from __future__ import annotations

import contextlib
import copy
import json
import socket
import sys
import threading
import time
import traceback
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol, cast
from urllib.parse import SplitResult, parse_qsl, urlsplit

from django_kameleoon.testing.body import Verdict, examine_request
from django_kameleoon.testing.received import Fault, Headers, ReceivedRequest
from django_kameleoon.testing.recording import Recorded, Recording
from django_kameleoon.testing.rules import EVENTS_PATH, BodyFormat

# Bodies larger than this are not even read (the connection is closed after the 413); below
# it they are read and discarded, so the client reliably sees the 413 rather than a reset.
_MAX_READ_BYTES = 64 * 1024 * 1024


class ServerOptions(Protocol):
    """What a handler reads of its ``DataApiServer`` on every request.

    ``DataApiServer``'s attributes of these names, read as they are at that moment, so that a
    change after ``start()`` applies to the next request.
    """

    @property
    def site_code(self) -> str | None: ...

    @property
    def on_event(self) -> Callable[[dict[str, Any]], None] | None: ...

    @property
    def on_violation(self) -> Callable[[str], None] | None: ...

    @property
    def on_duplicate(self) -> Callable[[dict[str, Any]], None] | None: ...


class HttpServer(ThreadingHTTPServer):
    """One life of a ``DataApiServer``'s port, from ``start()`` to ``stop()``.

    ``stopping`` is set when that life ends: a scripted delay waits on it, so ``stop()`` cuts
    the delay short. The open connections are tracked, so ``stop()`` can cut them too.
    """

    daemon_threads = True

    def __init__(
        self,
        address: tuple[str, int],
        *,
        recording: Recording,
        options: ServerOptions,
        stopping: threading.Event,
    ) -> None:
        self.recording = recording
        self.options = options
        self.stopping = stopping
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, _Handler)

    def connection_opened(self, connection: socket.socket) -> None:
        with self._connections_lock:
            self._connections.add(connection)

    def connection_closed(self, connection: socket.socket) -> None:
        with self._connections_lock:
            self._connections.discard(connection)

    def cut_connections(self) -> None:
        """Shut every open connection down: keep-alive ones would outlive the closed port."""
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client hanging up, or stop() cutting a connection, is routine here.
        if not isinstance(sys.exc_info()[1], OSError):
            super().handle_error(request, client_address)


class _BadFraming(Exception):
    """The body's length cannot be known: bad Content-Length or chunked encoding."""


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as real senders use it
    server_version = "KameleoonDataApiStandIn/1"
    timeout = 60  # an idle keep-alive connection must not hold a thread forever

    @property
    def http(self) -> HttpServer:
        return cast(HttpServer, self.server)

    def setup(self) -> None:
        super().setup()
        self.http.connection_opened(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.http.connection_closed(self.connection)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: tests read ``requests`` instead of stderr."""

    def do_POST(self) -> None:
        arrived = time.monotonic()
        url = urlsplit(self.path)
        headers = Headers((name, str(value)) for name, value in self.headers.items())
        try:
            body = self._read_body()
        except _BadFraming as exc:
            self.close_connection = True
            refused = Verdict(400, {}, "query", [f"{self.command} {url.path}: {exc}"])
            self._conclude(arrived, url, headers, b"", refused, status=400)
            return
        if url.path != EVENTS_PATH or self.command != "POST":
            wrong = self._wrong_place(url)
            self._conclude(arrived, url, headers, body, wrong, status=wrong.status)
            return

        fault = self.http.recording.next_fault()
        if fault is not None and fault.kind == "delay" and self.http.stopping.wait(fault.seconds):
            fault = Fault("drop")  # stop() during the delay: the answer is lost
        if fault is not None and fault.kind == "fail":  # the API never gets to the body
            self._conclude(arrived, url, headers, body, None, fault=fault, status=fault.status)
            return
        verdict = None
        if fault is None or fault.kind == "delay" or fault.accept:
            site_code = self.http.options.site_code
            verdict = examine_request(url.query, headers, body, site_code=site_code)
        if fault is not None and fault.kind == "drop":
            self.close_connection = True
            self._conclude(arrived, url, headers, body, verdict, fault=fault, status=None)
            return
        assert verdict is not None
        self._conclude(arrived, url, headers, body, verdict, fault=fault, status=verdict.status)

    # Every other method reaches the same place, to be answered 404 or 405 and recorded.
    do_GET = do_HEAD = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = do_POST

    def _wrong_place(self, url: SplitResult) -> Verdict:
        if url.path != EVENTS_PATH:
            status, problem = 404, f"{self.command} {url.path}: only POST {EVENTS_PATH} exists"
        else:
            status, problem = 405, f"{self.command} {EVENTS_PATH}: only POST is allowed"
        return Verdict(status, {}, "query", [problem])

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return self._read_chunked()
        length_text = self.headers.get("Content-Length")
        if length_text is None:
            return b""
        if not length_text.strip().isdigit():
            raise _BadFraming(f"Content-Length {length_text!r} is not a number")
        length = int(length_text)
        if length > _MAX_READ_BYTES:
            raise _BadFraming(f"Content-Length {length:,} is far over the 3 MB limit")
        return self.rfile.read(length)

    def _read_chunked(self) -> bytes:
        chunks: list[bytes] = []
        size = 0
        while True:
            line = self.rfile.readline(1024)
            try:
                chunk_size = int(line.split(b";")[0].strip(), 16)
            except ValueError:
                raise _BadFraming(f"bad chunk size line {line!r}") from None
            if chunk_size == 0:
                break
            size += chunk_size
            if size > _MAX_READ_BYTES:
                raise _BadFraming("chunked body is far over the 3 MB limit")
            chunks.append(self.rfile.read(chunk_size))
            self.rfile.readline(8)  # the CRLF after each chunk
        while self.rfile.readline(8192) not in (b"\r\n", b"\n", b""):
            pass  # trailers
        return b"".join(chunks)

    def _conclude(
        self,
        arrived: float,
        url: SplitResult,
        headers: Headers,
        body: bytes,
        verdict: Verdict | None,
        *,
        status: int | None,
        fault: Fault | None = None,
    ) -> None:
        """Record the request, then answer ``status`` (None: close the connection unanswered).

        ``verdict`` is None when the request was not examined (a ``fail`` or plain ``drop``
        fault): it is recorded, but its events are not accepted. Recording comes first, so
        once a client has its answer, ``events`` already holds what it sent.
        """
        parsed = verdict.body if verdict else None
        request = ReceivedRequest(
            method=self.command,
            path=url.path,
            query=_loose_query(url.query),
            headers=headers,
            body=body,
            body_size=len(body),
            body_format=_body_format_of(url.query),
            event_count=parsed.count if parsed else _count_events(url.query, body),
            status=status,
            at=arrived,
            fault=fault.kind if fault else None,
        )
        self._tell(self.http.recording.record(request, verdict))
        if status is None:
            return
        self.send_response(status)
        for name, value in fault.headers if fault else ():
            self.send_header(name, value)
        if status == 405:
            self.send_header("Allow", "POST")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _tell(self, recorded: Recorded) -> None:
        """Pass what was just recorded to the server's callbacks, before the sender's answer."""
        options = self.http.options
        # A failing callback is the caller's bug: show it, but keep serving the sender.
        try:
            if options.on_violation is not None:
                for violation in recorded.violations:
                    options.on_violation(violation)
            for callback, events in (
                (options.on_event, recorded.accepted),
                (options.on_duplicate, recorded.duplicates),
            ):
                if callback is not None:
                    for event in events:
                        callback(copy.deepcopy(event))
        except Exception:
            traceback.print_exc(file=sys.stderr)


# What a request held, read leniently: every request is recorded, even one never examined.


def _loose_query(query: str) -> dict[str, str]:
    return dict(parse_qsl(query, keep_blank_values=True))


def _body_format_of(query: str) -> BodyFormat:
    return "json" if _loose_query(query).get("json") == "true" else "query"


def _count_events(query: str, body: bytes) -> int:
    """How many events a body holds, cheaply, for requests that were not examined."""
    if _body_format_of(query) == "query":
        return len(body.rstrip(b"\n").split(b"\n")) if body.strip() else 0
    try:
        data = json.loads(body)
    except ValueError:
        return 0
    return len(data) if isinstance(data, list) else 0
