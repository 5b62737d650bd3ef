"""Delivery under real servers and scripted faults: per scenario, what the clients did, what the
Data API received, what was lost or duplicated, and what the library reported dropped.

``make scenarios`` prints the table; ``make scenarios SCENARIOS=--markdown`` prints it as the
README's "Guarantees and limits" quotes it. ``tests/reliability/test_scenarios.py`` runs every
scenario at a small scale and asserts each row meets its expectation.

Each scenario serves the test site (``tests/reliability/testsite``) with a real gunicorn or
uvicorn, or runs a script, sending to the strict local ``DataApiServer`` of this process, with
faults scripted here. The counts never come from the code under test:

- **sent** is what the load client did: every page view the server answered 200 promises a PAGE
  and a STATICDATA event of that visitor, every checkout it answered 302 a CONVERSION (each
  action is its own visitor, whose code the client sets in the cookie); the script's count is
  the calls it made.
- **received** is the distinct nonces the API accepted; **lost** the promised (visitor, type)
  pairs it never accepted; **duplicated** the copies it accepted again (same nonce).
- **drops reported** is the sum of the ``events_dropped`` signals, which the test site prints
  on stderr (``tests/reliability/testsite/drops.py``): what a site can see of its losses.
"""

from __future__ import annotations

import argparse
import contextlib
import http.server
import importlib.util
import os
import platform
import re
import signal
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

import requests

from django_kameleoon.testing import DataApiServer
from tests.reliability.testsite import drops
from tests.support import (
    CHROME,
    COOKIE,
    Process,
    gunicorn,
    serve,
    site_environment,
    spawn,
    uvicorn,
    wait_until,
)

#: What every scenario's site runs with: delivery within a second, as in production.
SETTINGS: dict[str, Any] = {
    "FLUSH_INTERVAL": 1.0,
    "TIMEOUT": 1.0,
    "RETRY_BACKOFF": 0.1,
    "RETRY_BACKOFF_MAX": 1.0,
    "SHUTDOWN_TIMEOUT": 5.0,
}
#: Every n-th action of the load client is a checkout (a conversion); the others page views.
CHECKOUT_EVERY = 5
#: How long the API stays away in the outage scenario, and how late it answers in the slow one.
OUTAGE_SECONDS = 3.0
SLOW_SECONDS = 1.5
ERROR_LINE = re.compile(r"^\d+ ERROR django_kameleoon: .*$", re.M)
#: The library's own line for each drop (``backends/reporting.py``), which a site's log keeps.
DROP_LINE = re.compile(r"django-kameleoon\[\d+\]: (\d+) event\(s\) dropped \(([a-z_]+)\)")


@dataclass(frozen=True)
class Scale:
    """How much traffic: ``actions`` spread over ``seconds``; ``conversions`` for the script."""

    actions: int
    seconds: float
    conversions: int
    max_queue: int | None = None  # the script's MAX_QUEUE_SIZE (None: the default, 10,000)


FULL = Scale(actions=1200, seconds=8.0, conversions=90_000)
#: The tests' scale: the same scenarios, in seconds; the script's queue shrunk with its load.
SMALL = Scale(actions=150, seconds=2.0, conversions=4000, max_queue=500)

# -- the load client ------------------------------------------------------------------------


@dataclass
class Load:
    """What the load client did and what the server answered."""

    expected: set[tuple[str, str]] = field(default_factory=set)
    done_at: list[float] = field(default_factory=list)  # when each answered action ended
    unanswered: int = 0  # no answer (the server was stopping): promises nothing
    wrong: Counter[int] = field(default_factory=Counter)  # answers other than 200/302, by status
    finished: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def done(self) -> int:
        return len(self.done_at) + self.unanswered + sum(self.wrong.values())

    def act(self, base_url: str, visitor: str, checkout: bool) -> None:
        """One visitor's page view, or checkout POST; record what its answer promises."""
        headers = {"User-Agent": CHROME, "Connection": "close"}
        try:
            if checkout:
                answer = requests.post(
                    base_url + "/buy/",
                    cookies={COOKIE: visitor},
                    headers=headers,
                    allow_redirects=False,
                    timeout=15,
                )
            else:
                answer = requests.get(
                    base_url + "/plain/", cookies={COOKIE: visitor}, headers=headers, timeout=15
                )
        except requests.RequestException:
            with self.lock:
                self.unanswered += 1
            return
        with self.lock:
            if answer.status_code != (302 if checkout else 200):
                self.wrong[answer.status_code] += 1
                return
            types = ("CONVERSION",) if checkout else ("PAGE", "STATICDATA")
            self.expected.update((visitor, event_type) for event_type in types)
            self.done_at.append(time.monotonic())


@contextlib.contextmanager
def load(base_url: str, scale: Scale, prefix: str) -> Iterator[Load]:
    """``scale.actions`` actions from 8 concurrent clients, paced evenly over ``scale.seconds``,
    in the background; the block ends when all are done."""
    state = Load()
    start = time.monotonic()
    interval = scale.seconds / scale.actions

    def one(index: int) -> None:
        time.sleep(max(start + index * interval - time.monotonic(), 0))
        state.act(base_url, f"{prefix}-{index:06d}", index % CHECKOUT_EVERY == 0)

    def run() -> None:
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(one, range(scale.actions)))
        state.finished.set()

    thread = threading.Thread(target=run, name="load", daemon=True)
    thread.start()
    try:
        yield state
    finally:
        thread.join()


# -- what a scenario measured, and its verdict --------------------------------------------------


@dataclass
class Measured:
    sent: int
    received: int
    lost: int
    duplicated: int
    reported: dict[str, int]  # by the events_dropped signal, by reason
    logged: dict[str, int]  # by the library's log lines, by reason
    wrong_answers: Counter[int]
    errors_logged: int
    max_copies: int  # the most times the API accepted one nonce
    unanswered: int = 0  # requests the server never answered (it was stopping): not sent
    bound: int | None = None  # the SIGKILL scenario's loss bound

    @property
    def dropped(self) -> int:
        return sum(self.reported.values())


#: A verdict: what went wrong, one phrase each; empty when the row meets its expectation.
Judge = Callable[[Measured], list[str]]


def measure(
    api: DataApiServer, expected: set[tuple[str, str]], output: str, wrong: Counter[int]
) -> Measured:
    events = api.events
    got = {(event["visitorCode"], event["eventType"]) for event in events}
    copies = Counter(event["nonce"] for event in api.duplicates)
    return Measured(
        sent=len(expected),
        received=len(events),
        lost=len(expected - got),
        duplicated=sum(copies.values()),
        reported=drops.reported(output),
        logged=logged_drops(output),
        wrong_answers=wrong,
        errors_logged=len(ERROR_LINE.findall(output)),
        max_copies=1 + max(copies.values(), default=0),
    )


def logged_drops(output: str) -> dict[str, int]:
    totals: Counter[str] = Counter()
    for count, reason in DROP_LINE.findall(output):
        totals[reason] += int(count)
    return dict(totals)


def consistent(m: Measured) -> list[str]:
    """Every row: the log and the signal report the same drops."""
    return [] if m.logged == m.reported else [f"the log says {m.logged}, the signal {m.reported}"]


def served_every_page(m: Measured) -> list[str]:
    return [f"HTTP {status} x{n}" for status, n in sorted(m.wrong_answers.items())]


def exact(m: Measured) -> list[str]:
    """Every event once, no drop reported: the graceful cases."""
    problems = served_every_page(m)
    problems += [f"{m.lost:,} lost"] if m.lost else []
    problems += [f"{m.duplicated:,} duplicated"] if m.duplicated else []
    problems += [f"{m.dropped:,} reported dropped"] if m.dropped else []
    return problems


def loss_reported(m: Measured) -> list[str]:
    """No loss goes unseen: what the API missed equals what the library reported dropped."""
    return [] if m.lost == m.dropped else [f"{m.lost:,} lost but {m.dropped:,} reported"]


def slow_api(m: Measured) -> list[str]:
    """Nothing lost; a timed-out request is resent (the API keeps the first copy), not forever."""
    problems = served_every_page(m) + loss_reported(m)
    problems += [f"{m.lost:,} lost"] if m.lost else []
    problems += [f"one event accepted {m.max_copies} times"] if m.max_copies > 2 else []
    return problems


def killed(m: Measured) -> list[str]:
    """SIGKILL: the worker's unsent queue is lost, unreported, within FLUSH_INTERVAL's worth."""
    assert m.bound is not None
    problems = served_every_page(m)
    problems += [f"{m.lost:,} lost > bound {m.bound:,}"] if m.lost > m.bound else []
    problems += [f"{m.duplicated:,} duplicated"] if m.duplicated else []
    return problems


def refused(m: Measured) -> list[str]:
    """A redirect is a configuration error: nothing delivered, every event reported dropped,
    and an ERROR logged."""
    problems = served_every_page(m) + loss_reported(m)
    problems += [] if m.errors_logged else ["no ERROR logged"]
    return problems


def misconfigured(m: Measured) -> list[str]:
    """A configuration mistake: every page served, nothing sent, the mistake logged."""
    problems = served_every_page(m)
    problems += [f"{m.received:,} received"] if m.received else []
    problems += [] if m.errors_logged else ["no ERROR logged"]
    return problems


def script(m: Measured) -> list[str]:
    """Outside a request there is time to wait for room in the queue: nothing may be lost."""
    return exact(m) + (loss_reported(m) if m.lost else [])


# -- the scenarios -------------------------------------------------------------------------------


@dataclass
class Context:
    """What a fault acts on, mid-traffic."""

    server: Process
    api: DataApiServer
    load: Load
    notes: dict[str, Any] = field(default_factory=dict)


Fault = Callable[[Context], None]


def no_fault(ctx: Context) -> None:
    pass


def reload_gracefully(ctx: Context) -> None:
    ctx.server.popen.send_signal(signal.SIGHUP)


def terminate(ctx: Context) -> None:
    ctx.server.stop(signal.SIGTERM, timeout=30)


def children(pid: int) -> list[int]:
    return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def kill_a_worker(ctx: Context) -> None:
    os.kill(children(ctx.server.popen.pid)[0], signal.SIGKILL)
    ctx.notes["killed_at"] = time.monotonic()


def outage(ctx: Context) -> None:
    ctx.api.stop()
    time.sleep(OUTAGE_SECONDS)
    ctx.api.start()


def slow(ctx: Context) -> None:
    """From now on, every answer comes later than TIMEOUT (until the scenario ends)."""
    ctx.api.delay(SLOW_SECONDS, times=10_000)


@contextlib.contextmanager
def redirect_target() -> Iterator[tuple[str, list[str]]]:
    """A server that answers 200 to anything: where a misconfigured URL's redirect leads.
    Yields its URL and the list of requests it got (none should come)."""
    got: list[str] = []

    class Ok(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            got.append(self.command)
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        do_POST = do_GET

        def log_message(self, format: str, *args: Any) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Ok)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/visit/events", got
    finally:
        httpd.shutdown()
        httpd.server_close()


@dataclass(frozen=True)
class Scenario:
    name: str
    expectation: str
    judge: Judge
    server: Callable[[int], list[str]] | None = None  # None: the conversions script
    fault: Fault = no_fault
    settings: dict[str, Any] = field(default_factory=dict)
    redirect: bool = False  # the API answers every POST with a 302 to a page answering 200
    quiet: float = 0.3  # how long the API must receive nothing before counting

    def run(self, api: DataApiServer, workdir: Path, scale: Scale) -> Row:
        followed: list[str] = []
        measured = self._script(api, workdir, scale) if self.server is None else None
        if measured is None:
            with contextlib.ExitStack() as stack:
                if self.redirect:
                    target, followed = stack.enter_context(redirect_target())
                    api.fail(302, times=10_000, headers={"Location": target})
                measured = self._serve(api, workdir, scale)
        problems = self.judge(measured) + consistent(measured)
        problems += [f"{len(followed)} redirect(s) followed"] if followed else []
        return Row(self, measured, problems)

    def _serve(self, api: DataApiServer, workdir: Path, scale: Scale) -> Measured:
        assert self.server is not None
        settings = {**SETTINGS, "DATA_API_URL": api.url, **self.settings}
        log = workdir / f"{slug(self.name)}.log"
        with serve(self.server, settings, log) as server:
            with load(server.url, scale, slug(self.name)) as traffic:
                ctx = Context(server, api, traffic)
                wait_until(
                    lambda: traffic.done >= scale.actions // 2,
                    "half the traffic",
                    timeout=scale.seconds * 10,
                )
                self.fault(ctx)
            if server.popen.poll() is None:
                server.stop(signal.SIGTERM, timeout=60)
        settle(api, self.quiet)
        measured = measure(api, traffic.expected, server.output(), traffic.wrong)
        measured.unanswered = traffic.unanswered
        if "killed_at" in ctx.notes:
            measured.bound = kill_bound(traffic, ctx.notes["killed_at"])
        return measured

    def _script(self, api: DataApiServer, workdir: Path, scale: Scale) -> Measured:
        """Conversions recorded by a script outside any request (a management command's loop)."""
        settings = {**SETTINGS, "DATA_API_URL": api.url, **self.settings}
        if scale.max_queue is not None:
            settings["MAX_QUEUE_SIZE"] = scale.max_queue
        code = (
            "import sys, django; django.setup()\n"
            "import django_kameleoon\n"
            "from tests.reliability.testsite import drops\n"
            "drops.connect()\n"
            "for i in range(int(sys.argv[1])):\n"
            "    django_kameleoon.track_conversion(f'script-{i:06d}', 42, revenue=1.0)\n"
            "print('calls', sys.argv[1], flush=True)\n"
        )
        argv = [sys.executable, "-c", code, str(scale.conversions)]
        log = workdir / "script.log"
        with spawn(argv, log, env=site_environment(settings)) as process:
            process.wait_for(lambda: process.popen.poll() is not None, "the script's exit", 300)
        output = process.output()
        calls = re.search(r"^calls (\d+)$", output, re.M)
        assert calls and process.popen.returncode == 0, output[-3000:]
        expected = {(f"script-{i:06d}", "CONVERSION") for i in range(int(calls.group(1)))}
        settle(api, self.quiet)
        return measure(api, expected, output, Counter())


def settle(api: DataApiServer, quiet: float) -> None:
    """Wait until the API received nothing for a while: a late answer (the slow API) may still
    be recording what it read."""
    seen = [-1]

    def calm() -> bool:
        before, seen[0] = seen[0], len(api.requests)
        return before == seen[0]

    wait_until(calm, "the API to go quiet", timeout=120, interval=quiet)


def kill_bound(traffic: Load, killed_at: float) -> int:
    """What a worker killed at ``killed_at`` may have lost: at most FLUSH_INTERVAL seconds of
    events since its last delivery (plus a quarter second of slack), counted over every
    worker's answers, so an upper bound."""
    window = SETTINGS["FLUSH_INTERVAL"] + 0.25
    actions = sum(1 for at in traffic.done_at if killed_at - window <= at <= killed_at + 0.25)
    return 2 * actions


def slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


SCENARIOS = [
    Scenario("gunicorn sync -w 2", "all once", exact, gunicorn("-w", "2")),
    Scenario(
        "gunicorn gthread -w 2 --threads 4",
        "all once",
        exact,
        gunicorn("-w", "2", "--threads", "4"),
    ),
    Scenario("gunicorn gevent -w 2", "all once", exact, gunicorn("-w", "2", "-k", "gevent")),
    Scenario("uvicorn --workers 2", "all once", exact, uvicorn("--workers", "2")),
    Scenario(
        "gunicorn reload (HUP) mid-traffic",
        "all once",
        exact,
        gunicorn("-w", "2"),
        reload_gracefully,
    ),
    Scenario("gunicorn SIGTERM mid-traffic", "all once", exact, gunicorn("-w", "2"), terminate),
    Scenario(
        "gunicorn SIGKILL of a worker",
        "lost <= FLUSH_INTERVAL's worth, unreported",
        killed,
        gunicorn("-w", "2"),
        kill_a_worker,
    ),
    Scenario(
        f"API down {OUTAGE_SECONDS:g} s, then back",
        "all once",
        exact,
        gunicorn("-w", "2"),
        outage,
    ),
    Scenario(
        f"API answers in {SLOW_SECONDS:g} s > TIMEOUT 1 s",
        "none lost, each resent at most once",
        slow_api,
        gunicorn("-w", "2"),
        slow,
        quiet=SLOW_SECONDS + 0.5,
    ),
    Scenario(
        "API answers 302 (redirect)",
        "all dropped and reported, ERROR logged",
        refused,
        gunicorn("-w", "2"),
        redirect=True,
    ),
    Scenario(
        'config mistake: BACKEND "threadedd"',
        "pages 200, checkout 302, none sent, ERROR logged",
        misconfigured,
        gunicorn("-w", "2"),
        settings={"BACKEND": "threadedd"},
    ),
    Scenario(
        'config mistake: SITE_CODE ""',
        "pages 200, checkout 302, none sent, ERROR logged",
        misconfigured,
        gunicorn("-w", "2"),
        settings={"SITE_CODE": ""},
    ),
    Scenario("conversions from a script", "all once", script),
]


@dataclass
class Row:
    scenario: Scenario
    measured: Measured
    problems: list[str]

    @property
    def ok(self) -> bool:
        return not self.problems

    def cells(self, scale: Scale) -> list[str]:
        m = self.measured
        name = self.scenario.name
        if self.scenario.server is None:
            name = f"{scale.conversions:,} {name}"
        reported = ", ".join(f"{n:,} {reason}" for reason, n in sorted(m.reported.items()))
        if m.errors_logged:
            reported += ("; " if reported else "") + f"{m.errors_logged} ERROR lines"
        verdict = "PASS" if self.ok else "FAIL: " + ", ".join(self.problems)
        if m.bound is not None:
            verdict += f" (bound {m.bound:,})"
        if m.unanswered:
            verdict += f" ({m.unanswered:,} requests refused after the stop)"
        return [
            name,
            f"{m.sent:,}",
            f"{m.received:,}",
            f"{m.lost:,}",
            f"{m.duplicated:,}",
            reported or "0",
            self.scenario.expectation,
            verdict,
        ]


HEADER = [
    "scenario",
    "sent",
    "received",
    "lost",
    "duplicated",
    "drops reported",
    "expected",
    "verdict",
]


def table(rows: list[Row], scale: Scale, markdown: bool) -> str:
    lines = [HEADER] + [row.cells(scale) for row in rows]
    if markdown:
        out = ["| " + " | ".join(line) + " |" for line in lines]
        out.insert(1, "|" + "|".join("---" for _ in HEADER) + "|")
        return "\n".join(out)
    widths = [max(len(line[i]) for line in lines) for i in range(len(HEADER))]
    out = [
        "  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip()
        for line in lines
    ]
    out.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(out)


def machine() -> str:
    packages = ", ".join(f"{name} {version(name)}" for name in ("Django", "gunicorn", "uvicorn"))
    return (
        f"{os.cpu_count()} cores, {platform.system()} {platform.machine()}, "
        f"Python {platform.python_version()}, {packages}"
    )


def available(scenario: Scenario) -> bool:
    """The gevent worker needs gevent (in the ``dev`` extra)."""
    return "gevent" not in scenario.name or importlib.util.find_spec("gevent") is not None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--markdown", action="store_true", help="a Markdown table, for README")
    parser.add_argument("--small", action="store_true", help="the tests' scale")
    parser.add_argument("-k", default="", help="only the scenarios whose name contains this")
    args = parser.parse_args()
    scale = SMALL if args.small else FULL
    rows = []
    with TemporaryDirectory() as tmp:
        for scenario in SCENARIOS:
            if args.k.lower() not in scenario.name.lower():
                continue
            if not available(scenario):
                print(f"skipped (gevent is not installed): {scenario.name}", file=sys.stderr)
                continue
            with DataApiServer(site_code="testsite01") as api:
                started = time.monotonic()
                rows.append(scenario.run(api, Path(tmp), scale))
            print(f"{scenario.name}: {time.monotonic() - started:.1f} s", file=sys.stderr)
    print(table(rows, scale, args.markdown))
    print(
        f"\n{scale.actions:,} actions per server scenario over {scale.seconds:g} s "
        f"(every {CHECKOUT_EVERY}th a checkout), settings {SETTINGS}; {machine()}."
    )
    return 0 if all(row.ok for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
