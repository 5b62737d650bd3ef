"""A small load generator for when wrk is not installed: the requests of ``load.lua``, in Python.

``python -m benchmarks.loadgen URL --connections 4 --seconds 5`` keeps ``connections``
keep-alive connections busy (one request in flight on each) for ``seconds``, then prints the
same ``RESULT {...}`` line as the wrk script: requests, seconds, p50 and p99 in µs, errors.
It runs in its own process, so its work never shares a GIL with the server's; it is bounded
(no queue: a connection sends its next request when the answer to the last one is read). It
is slower than wrk, so on a small machine it takes a core from the server: its ratios are
comparable with each other, its absolute figures less so.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from urllib.parse import urlsplit

AGENTS = [
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0.0.0 Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4_1 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.4.1 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0",
    "Mozilla/5.0 (Linux; Android 14; SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0.6367.82 Mobile Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.4.1 Safari/605.1.15",
]
PAGES = ["/", "/products/42/", "/category/sale/", "/blog/our-story/"]


def request(n: int) -> bytes:
    """The n-th request, as ``load.lua`` builds it."""
    lines = [
        f"GET {PAGES[n % 4]} HTTP/1.1",
        "Host: shop.example.com",
        f"User-Agent: {AGENTS[n % 5]}",
        "Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
        "Accept-Language: en-US,en;q=0.9",
    ]
    if n % 10 < 7:
        cookie = f"kameleoonVisitorCode=benchvisitor{n % 1000:05d}"
        # A returning browser sends back the cookie that dates the code too, except on one
        # request in twenty: a visit a day after the last renewal, whose cookie is renewed.
        renewed = "" if n % 20 == 0 else "; kameleoonVisitorCodeRefreshed=1"
        lines.append(f"Cookie: {cookie}{renewed}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


async def _connection(
    host: str, port: int, until: float, counter: list[int], latencies: list[float]
) -> tuple[int, int]:
    """One connection's requests, one at a time; it reconnects when the server closes it
    (gunicorn's sync workers answer ``Connection: close``, as wrk also handles)."""
    errors = non2xx = 0
    reader: asyncio.StreamReader | None = None
    writer: asyncio.StreamWriter | None = None
    while time.perf_counter() < until:
        counter[0] += 1
        start = time.perf_counter()
        try:
            if writer is None:
                reader, writer = await asyncio.open_connection(host, port)
            assert reader is not None
            writer.write(request(counter[0]))
            head = await reader.readuntil(b"\r\n\r\n")
            length, close = 0, False
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                name = name.strip().lower()
                if name == b"content-length":
                    length = int(value)
                elif name == b"connection" and value.strip().lower() == b"close":
                    close = True
            await reader.readexactly(length)
        except (OSError, asyncio.IncompleteReadError):
            errors += 1
            close = True
        else:
            latencies.append(time.perf_counter() - start)
            if not head.startswith((b"HTTP/1.1 2", b"HTTP/1.0 2")):
                non2xx += 1
        if close and writer is not None:
            writer.close()
            reader = writer = None
    if writer is not None:
        writer.close()
    return errors, non2xx


async def run(url: str, connections: int, seconds: float) -> dict[str, float]:
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    counter, latencies = [0], []  # type: ignore[var-annotated]
    started = time.perf_counter()
    results = await asyncio.gather(
        *(
            _connection(host, port, started + seconds, counter, latencies)
            for _ in range(connections)
        )
    )
    elapsed = time.perf_counter() - started
    latencies.sort()

    def percentile(p: float) -> int:
        if not latencies:
            return 0
        return round(latencies[min(int(len(latencies) * p / 100), len(latencies) - 1)] * 1e6)

    return {
        "requests": len(latencies),
        "seconds": elapsed,
        "p50_us": percentile(50),
        "p99_us": percentile(99),
        "errors": sum(e for e, _ in results),
        "non2xx": sum(n for _, n in results),
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.loadgen", description=__doc__)
    parser.add_argument("url")
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=5.0)
    options = parser.parse_args()
    result = asyncio.run(run(options.url, options.connections, options.seconds))
    print("RESULT " + json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
