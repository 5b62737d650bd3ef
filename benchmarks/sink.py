"""A fast local HTTP sink that plays every service the benchmarked clients talk to.

Run in its own process (``python -m benchmarks.sink``), so that its work never competes for the
benchmark process's GIL; it prints its port on the first line of stdout, then serves on
127.0.0.1 only. It answers:

- ``POST /visit/events`` (Kameleoon's Data API: ours and the official SDK's tracking) with 202;
- ``GET /v3/<site code>`` (the SDK's configuration) with a minimal, empty configuration;
- ``POST /oauth/token`` (the SDK's access token) with a token;
- ``POST /batch/`` (posthog) with 200;
- anything else with 200.

A path may carry a prefix (``/sdk/visit/events``): it is answered like the path without it but
counted apart, so two clients that speak the same API can share one sink and still be told apart.

It counts the events in each body (JSON arrays by their ``eventType`` keys, query lines,
posthog batches) so the benchmark can check that every event arrived; ``GET /_stats``
returns the counts, ``POST /_reset`` clears them. Standard library only.
"""

from __future__ import annotations

import gzip
import json
import socket
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

CONFIGURATION = json.dumps(
    {"configuration": {}, "featureFlags": [], "segments": [], "customData": []}
).encode()
TOKEN = json.dumps({"access_token": "benchmark-token", "expires_in": 86400}).encode()

_lock = threading.Lock()
_events: dict[str, int] = {}
_requests: dict[str, int] = {}


def _route(path: str) -> str:
    """The path without a client prefix such as ``/sdk``."""
    for known in ("/visit/events", "/v3/", "/oauth/token", "/batch"):
        at = path.find(known)
        if at >= 0:
            return path[at:]
    return path


#: What starts the key of each event's type in a JSON body. Inside a JSON string a quote is
#: always escaped, so these bytes are found only where a key ``eventType`` is, once per event
#: of the benchmark's (no field of theirs is a map with such a key). Counting them costs a
#: fiftieth of ``json.loads`` (0.05 against 2.5 ms for 1,000 page-view events): the sink
#: stands in for a remote API, and its CPU on the benchmark's two cores would otherwise be
#: taken from the servers it measures, in bursts of a few milliseconds per batch.
_EVENT_TYPE_KEY = b'"eventType":'


def _count(path: str, query: str, body: bytes) -> int:
    path = _route(path)
    if not body:
        return 0
    if path == "/visit/events":
        if "json=true" in query:
            return body.count(_EVENT_TYPE_KEY)
        return len(body.rstrip(b"\n").split(b"\n"))
    if path.startswith("/batch"):
        return len(json.loads(body).get("batch", ()))
    return 0


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "BenchSink/1"

    def log_message(self, format: str, *args: object) -> None:
        pass

    def setup(self) -> None:
        super().setup()
        # No Nagle: with it, a client's small request waits out the delayed ACK (40 ms).
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def _answer(self, status: int, body: bytes = b"", kind: str = "application/json") -> None:
        # Status line, headers and body in one write: split writes meet the delayed ACK too.
        self.send_response_only(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self._headers_buffer.append(b"\r\n" + body)  # type: ignore[attr-defined]
        self.flush_headers()

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        if url.path == "/_stats":
            with _lock:
                stats = {"events": dict(_events), "requests": dict(_requests)}
            self._answer(200, json.dumps(stats).encode())
        elif _route(url.path).startswith("/v3/"):
            self._answer(200, CONFIGURATION)
        else:
            self._answer(200)

    def do_POST(self) -> None:
        url = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        if self.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        if url.path == "/_reset":
            with _lock:
                _events.clear()
                _requests.clear()
            self._answer(200)
            return
        try:
            count = _count(url.path, url.query, body)
        except ValueError:
            count = 0
        with _lock:
            _events[url.path] = _events.get(url.path, 0) + count
            _requests[url.path] = _requests.get(url.path, 0) + 1
        route = _route(url.path)
        if route == "/oauth/token":
            self._answer(200, TOKEN)
        elif route == "/visit/events":
            self._answer(202)
        elif route.startswith("/batch"):
            self._answer(200, b'{"status":"Ok"}')
        else:
            self._answer(200)


class Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128


def main() -> None:
    server = Server(("127.0.0.1", 0), Handler)
    print(server.server_address[1], flush=True)

    # The parent closes our stdin when it is done (or dies): stop then, never linger.
    def stop_when_orphaned() -> None:
        sys.stdin.read()
        server.shutdown()

    threading.Thread(target=stop_when_orphaned, daemon=True).start()
    server.serve_forever(poll_interval=0.2)


if __name__ == "__main__":
    main()
