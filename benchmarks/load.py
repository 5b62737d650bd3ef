"""The real-server figure: gunicorn and uvicorn under load, with and without a middleware.

For each server (gunicorn sync ``-w 2``, gunicorn gthread ``-w 2 --threads 4``, uvicorn
with an async view), three versions of the benchmark site (``loadsite.py``): the
startproject stack alone, the stack with ours, and the stack with the peer middleware
(user-agents + the official SDK). Each round starts each version in turn on a fresh server,
warms it up, has a load generator in its own process (wrk with ``load.lua`` when installed,
else ``loadgen.py``) drive it, and stops it, the order rotating each round; the figures are
medians of the rounds. A fresh server each round because worker processes of one build differ
in speed by as much as the middleware costs (951 to 1,081 µs per request here): a server kept
for the whole run would lend its luck to every round of its version. Every site sends its
events to the run's sink, in its own process. The servers' own CPU time (every process of the
server, all threads: request path and sender) is read from ``/proc`` around each round.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from benchmarks.figures import Figure
from benchmarks.harness import Sink, alternate

__all__ = ["SERVERS", "load", "one_round", "server_argv"]

HERE = Path(__file__).parent
STACKS = ("stack", "ours", "peer")
CONNECTIONS = 4

#: name -> (the server's options, whether the site runs under ASGI with an async view)
SERVERS: dict[str, tuple[list[str], bool]] = {
    "gunicorn sync -w 2": (["--workers=2"], False),
    # No keep-alive: a kept-alive connection stays with the worker that accepted it, so wrk's
    # four connections fell three or four to one worker in about half the rounds, for every
    # version, and such a round served ~1,050 requests/s instead of ~2,430 (fresh servers,
    # 2026-12-07). Each request on a new connection, accept() shares them out; it is also how
    # nginx talks to an upstream unless told to keep connections alive.
    "gunicorn gthread -w 2 --threads 4": (
        ["--workers=2", "--threads=4", "--worker-class=gthread", "--keep-alive=0"],
        False,
    ),
    # One process: with --workers 2 (its multiprocess supervisor) uvicorn 0.54 served a third
    # as many requests here, which would measure the supervisor rather than the middleware.
    "uvicorn, async view": ([], True),
}


def server_argv(name: str, port: int) -> list[str]:
    """The command that serves ``loadsite`` with server ``name`` on 127.0.0.1:``port``."""
    options, is_asgi = SERVERS[name]
    if is_asgi:
        return [sys.executable, "-m", "uvicorn", "benchmarks.loadsite:asgi_application",
                f"--port={port}", "--no-access-log", "--lifespan=off", "--log-level=warning",
                *options]  # fmt: skip
    return [sys.executable, "-m", "gunicorn", "benchmarks.loadsite:application",
            f"--bind=127.0.0.1:{port}", "--no-control-socket", "--graceful-timeout=5",
            "--log-level=warning", *options]  # fmt: skip


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    url: str
    log: Path

    def cpu_seconds(self) -> tuple[float, float]:
        """User + system CPU of the server's processes (the master and its workers): their
        main threads', and their other threads' (our sender, the SDK's threads, and under
        gthread the request threads too), so the report can say where the added CPU goes."""
        ticks = [0, 0]
        for pid in _family(self.process.pid):
            with contextlib.suppress(OSError):
                for task in Path(f"/proc/{pid}/task").iterdir():
                    with contextlib.suppress(OSError, IndexError, ValueError):
                        fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
                        ticks[task.name != str(pid)] += int(fields[11]) + int(fields[12])
        hertz = os.sysconf("SC_CLK_TCK")
        return ticks[0] / hertz, ticks[1] / hertz


def _family(root: int) -> list[int]:
    """``root`` and its descendants, from /proc."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                parents[int(entry.name)] = int(
                    (entry / "stat").read_text().rsplit(")", 1)[1].split()[1]
                )
    family, frontier = [root], [root]
    while frontier:
        frontier = [pid for pid, ppid in parents.items() if ppid in frontier]
        family += frontier
    return family


@contextlib.contextmanager
def serve(
    name: str, stack: str, sink: Sink, logs: Path, env: dict[str, str] | None = None
) -> Iterator[Server]:
    """One server running the site with ``stack`` (and ``env`` besides), answering when this
    yields."""
    port = _free_port()
    env = {**os.environ, "BENCH_STACK": stack, "BENCH_SINK": sink.url,
           "BENCH_ASYNC": "1" if SERVERS[name][1] else "0",
           "PYTHONPATH": str(HERE.parent), "DJANGO_DEBUG": "0", **(env or {})}  # fmt: skip
    log = logs / f"{name.split()[0]}-{name.split()[1]}-{stack}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            server_argv(name, port), env=env, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    server = Server(process, f"http://127.0.0.1:{port}", log)
    try:
        _wait_answering(server)
        yield server
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def _wait_answering(server: Server, timeout: float = 60.0) -> None:
    # A program's User-Agent: neither middleware counts it as a page view.
    request = urllib.request.Request(
        server.url + "/", headers={"Host": "shop.example.com", "User-Agent": "curl/8.5.0"}
    )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            break
        try:
            with urllib.request.urlopen(request, timeout=2) as answer:
                if answer.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    tail = server.log.read_text(errors="replace")[-2000:]
    raise RuntimeError(f"{server.url} did not start ({server.process.poll()}):\n{tail}")


def generator() -> str:
    return "wrk" if shutil.which("wrk") else "benchmarks/loadgen.py"


def drive(url: str, seconds: float) -> dict[str, float]:
    """Load ``url`` for ``seconds`` with ``CONNECTIONS`` connections; the RESULT line's numbers."""
    if shutil.which("wrk"):
        argv = [
            "wrk",
            "-t1",
            f"-c{CONNECTIONS}",
            f"-d{seconds:g}s",
            "-s",
            str(HERE / "load.lua"),
            url,
        ]
    else:
        argv = [sys.executable, "-m", "benchmarks.loadgen", url,
                f"--connections={CONNECTIONS}", f"--seconds={seconds:g}"]  # fmt: skip
    out = subprocess.run(
        argv, capture_output=True, text=True, timeout=seconds + 60, check=True,
        cwd=HERE.parent,
    ).stdout  # fmt: skip
    line = next(line for line in out.splitlines() if line.startswith("RESULT "))
    result: dict[str, float] = json.loads(line[len("RESULT ") :])
    if result["errors"] or result["non2xx"]:
        raise RuntimeError(f"the load on {url} met errors: {result}")
    return result


def one_round(
    name: str,
    stack: str,
    sink: Sink,
    logs: Path,
    seconds: float,
    warmup: float,
    env: dict[str, str] | None = None,
) -> dict[str, float]:
    """One contestant's round: a fresh server, warmed up, then loaded for ``seconds``; the
    load's RESULT numbers with the server's CPU per request (``cpu_us``) and the part of it
    outside its processes' main threads (``other_us``)."""
    with serve(name, stack, sink, logs, env) as server:
        drive(server.url, warmup)
        main, other = server.cpu_seconds()
        result = drive(server.url, seconds)
        main_after, other_after = server.cpu_seconds()
    per_request = 1e6 / result["requests"]
    result["cpu_us"] = (main_after - main + other_after - other) * per_request
    result["other_us"] = (other_after - other) * per_request
    return result


def load(sink: Sink, *, rounds: int = 5, seconds: float = 5.0, warmup: float = 2.0) -> list[Figure]:
    """One figure per server: throughput, p50 and p99 with ours against the same stack alone."""
    figures = []
    with tempfile.TemporaryDirectory(prefix="kameleoon-load-") as tmp:
        for name in SERVERS:
            figures.append(_one_server(name, sink, Path(tmp), rounds, seconds, warmup))
    return figures


def _one_server(
    name: str, sink: Sink, logs: Path, rounds: int, seconds: float, warmup: float
) -> Figure:
    results: dict[str, list[dict[str, float]]] = {stack: [] for stack in STACKS}
    before = sink.stats()["events"]

    def contestant(stack: str) -> float:
        result = one_round(name, stack, sink, logs, seconds, warmup)
        results[stack].append(result)
        return result["requests"] / result["seconds"]

    alternate({stack: (lambda s=stack: contestant(s)) for stack in STACKS}, rounds)
    after = sink.stats()["events"]
    events = {path: n - before.get(path, 0) for path, n in after.items()}

    def median(stack: str, key: str) -> float:
        if key == "rps":
            return statistics.median(r["requests"] / r["seconds"] for r in results[stack])
        return statistics.median(r[key] for r in results[stack])

    m = {
        stack: {k: median(stack, k) for k in ("rps", "p50_us", "p99_us", "cpu_us", "other_us")}
        for stack in STACKS
    }
    short = name.split(",")[0]
    label = "the same server, no middleware"
    lines = [
        Figure(f"Load {short}: throughput", "req/s", m["ours"]["rps"], m["stack"]["rps"], label,
               m["ours"]["rps"] / m["stack"]["rps"], 0.95, "ours >= 0.95x stack", at_least=True),
        Figure(f"Load {short}: p50 latency", "ms", m["ours"]["p50_us"] / 1e3,
               m["stack"]["p50_us"] / 1e3, label, m["ours"]["p50_us"] / m["stack"]["p50_us"],
               1.05, "ours <= 1.05x stack"),
        Figure(f"Load {short}: p99 latency", "ms", m["ours"]["p99_us"] / 1e3,
               m["stack"]["p99_us"] / 1e3, label, m["ours"]["p99_us"] / m["stack"]["p99_us"],
               1.3, "ours <= 1.3x stack"),
    ]  # fmt: skip
    first, *extra = lines
    first.extra = extra
    first.rounds = {
        f"{stack} {key}": [r["requests"] / r["seconds"] if key == "req/s" else r["p99_us"] / 1e3
                           for r in results[stack]]
        for stack in STACKS for key in ("req/s", "p99 ms")
    }  # fmt: skip
    peer = m["peer"]
    first.notes = [
        f"{name}; {generator()} -c{CONNECTIONS}, {rounds} rounds of {seconds:g} s, each on a "
        f"fresh server after a {warmup:g} s warm-up, stacks alternated; five browsers' "
        "User-Agents over four pages, 70% of requests with a visitor cookie",
        "stack / ours / peer: "
        + "; ".join(
            f"{label} {m['stack'][key] / div:,.{d}f} / {m['ours'][key] / div:,.{d}f} / "
            f"{peer[key] / div:,.{d}f}"
            for label, key, div, d in (
                ("req/s", "rps", 1, 0),
                ("p50 ms", "p50_us", 1e3, 2),
                ("p99 ms", "p99_us", 1e3, 2),
                ("server CPU µs/req", "cpu_us", 1, 0),
                ("of it outside the processes' main threads", "other_us", 1, 1),
            )
        ),
        "ours vs the peer: "
        + ", ".join(
            f"{label} {m['ours'][key] / peer[key]:.2f}x"
            for label, key in (("throughput", "rps"), ("p50", "p50_us"), ("p99", "p99_us"))
        )
        + f"; added server CPU per request: ours {m['ours']['cpu_us'] - m['stack']['cpu_us']:.0f} "
        f"µs, peer {peer['cpu_us'] - m['stack']['cpu_us']:.0f} µs",
        f"events this server's sites sent to the sink: ours {events.get('/visit/events', 0):,}, "
        f"peer {events.get('/sdk/visit/events', 0):,}",
    ]
    return first
