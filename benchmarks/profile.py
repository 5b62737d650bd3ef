"""Profile our side of each figure with cProfile: ``python -m benchmarks.profile [NAME ...]``.

NAME is ``conversion``, ``pageview``, ``sender`` or ``useragent`` (all by default), or
``opcodes``, ``cold`` or ``instack``. The first four print the functions that cost the most
own time and the most cumulative time. The sender is profiled by running its ``Delivery`` in the
main thread on 50,000 queued conversions (cProfile sees only the thread that enabled it).

``opcodes`` counts, per function, the Python bytecode instructions that the middleware adds to
a page view (the stack with ours, minus the stack alone, on the same 1,000 requests): a count,
not a time, so it is the same on a loaded machine and shows what to cut on the request path.

``cold`` times the middleware's own work on 3,000 page views (requests and responses made
beforehand) twice: back to back, and with the CPU caches emptied before each one, then each
step of it, cold. In a real request our code runs among a whole Django stack's code and data,
which push ours out of the caches: there it costs more than back to back, and what it costs is
mostly the memory it touches (functions, modules, caches), not the instructions it runs.

``instack`` says where the middleware's added cost goes in a real stack: the request thread's
CPU per page view, beyond the stack alone, with one more (pass-through) middleware, with ours
doing nothing after the view, with ours keeping events in memory, with ours and its sender
delivering to the sink (page views' events made in the sender), and the same with the events
made on the request path, as before they were made in the sender; then the CPU of the other
threads (the sender's) beyond the stack alone, how much of the request thread's is
``process()`` itself, timed in place, and how much is garbage collection (``gc.callbacks``).
Each line is the median of the rounds' differences from the stack alone, the contestants
alternating.

``inserver`` measures the same inside a real server: gunicorn sync ``-w 2`` under the load
figure's wrk load (``benchmarks.load``), a fresh server per contestant and round, the stack
alone, with ours (``process()`` timed in place), with ours doing nothing after the view, and
with ours keeping events in memory (no sender thread). It prints the CPU per request beyond
the stack alone of the workers' main threads and of their other threads (the sender), read
from ``/proc``, and ``process()``'s own time.
"""

from __future__ import annotations

import atexit
import collections
import cProfile
import functools
import io
import json
import os
import pstats
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any

from benchmarks import djsite, figures, load, useragents
from benchmarks.harness import Series, Sink, alternate, guard_network

TOP = 22


def show(title: str, run: Callable[[], Any], calls: int) -> None:
    profile = cProfile.Profile()
    start = time.perf_counter()
    profile.runcall(run)
    elapsed = time.perf_counter() - start
    print(f"\n=== {title}: {elapsed / calls * 1e6:.1f} µs per unit under cProfile ({calls:,})")
    for order in ("tottime", "cumulative"):
        out = io.StringIO()
        stats = pstats.Stats(profile, stream=out).strip_dirs().sort_stats(order)
        stats.print_stats(TOP)
        text = out.getvalue()
        print(text[text.index("ncalls") :].rstrip())


def conversion(sink: Sink) -> None:
    import django_kameleoon

    codes = figures._visitor_codes(1000, seed=3)
    with figures._override(figures._kameleoon(sink.url)):
        django_kameleoon.track_conversion(codes[0], 1, revenue=1.0)
        django_kameleoon.flush(10)

        def run() -> None:
            for i in range(5000):
                django_kameleoon.track_conversion(codes[i % 1000], 42, revenue=19.99)

        show("track_conversion (caller)", run, 5000)
        django_kameleoon.flush(30)


def pageview(sink: Sink) -> None:
    import django_kameleoon

    environs = figures.page_view_environs()
    with figures._override(figures._kameleoon(sink.url)):
        stack = djsite.handler(djsite.STARTPROJECT_MIDDLEWARE)
        ours = djsite.handler(djsite.with_middleware(figures.OURS))
        figures._serve(stack, environs)
        figures._serve(ours, environs)
        django_kameleoon.flush(30)
        show("page view, stack alone", lambda: figures._serve(stack, environs), len(environs))
        show("page view, stack + ours", lambda: figures._serve(ours, environs), len(environs))
        django_kameleoon.flush(30)


def opcodes(sink: Sink) -> None:
    environs = figures.page_view_environs()
    warm_up, measured = environs[:1000], environs[1000:2000]
    with figures._override(figures._kameleoon(sink.url, BACKEND=LOCMEM)):
        stack = djsite.handler(djsite.STARTPROJECT_MIDDLEWARE)
        ours = djsite.handler(djsite.with_middleware(figures.OURS))
        figures._serve(stack, warm_up)
        figures._serve(ours, warm_up)
        added = _opcodes(ours, measured)
        added.subtract(_opcodes(stack, measured))
    per_request = len(measured)
    print(f"\n=== page view: {added.total() / per_request:,.0f} opcodes added per request")
    for function, count in added.most_common(TOP * 2):
        print(f"{count / per_request:8.1f}  {function}")


#: Keeps events in memory: the opcode count is the request path's alone, no sender thread.
LOCMEM = "django_kameleoon.backends.locmem.LocmemBackend"


def _opcodes(handler: Any, environs: list[dict[str, Any]]) -> collections.Counter[str]:
    """Python bytecode instructions run per function while ``handler`` serves ``environs``."""
    counts: collections.Counter[str] = collections.Counter()

    def trace(frame: FrameType, event: str, arg: Any) -> Callable[..., Any]:
        frame.f_trace_opcodes = True
        code = frame.f_code
        function = f"{code.co_filename.rpartition('site-packages/')[2]}:{code.co_name}"

        def count(frame: FrameType, event: str, arg: Any) -> Callable[..., Any]:
            if event == "opcode":
                counts[function] += 1
            return count

        return count

    sys.settrace(trace)
    try:
        figures._serve(handler, environs)
    finally:
        sys.settrace(None)
    return counts


#: The steps of a page view timed by ``cold``: functions of ``django_kameleoon.middleware``.
COLD_STEPS = (
    "page_view_verdict",
    "page_verdict",
    "page_rules_verdict",
    "is_person",
    "has_consent",
    "send_page_view",
    "allowed_host",
    "full_path",
    "queue_page_view",
    "locale_language_tag",
    "queue_later",
    "store_visitor_code",
)
#: Written over before each cold request: larger than this machine's last-level cache.
_CACHE_SWEEP = bytearray(32 * 2**20)


def cold(sink: Sink) -> None:
    import django_kameleoon
    from django_kameleoon import middleware
    from django_kameleoon.scope import serving_request

    environs = figures.page_view_environs()[:3000]
    spent = {name: 0.0 for name in COLD_STEPS}
    with figures._override(figures._kameleoon(sink.url, BACKEND=LOCMEM)):
        process = middleware.KameleoonMiddleware(lambda request: None).process

        def serve(sweep: bool) -> float:
            pairs = _requests_and_responses(environs)
            django_kameleoon.outbox.clear()
            total = 0.0
            for request, response in pairs:
                if sweep:
                    _CACHE_SWEEP[::64] = bytes(len(_CACHE_SWEEP) // 64)
                start = time.perf_counter()
                with serving_request():
                    process(request, response, used=False)
                total += time.perf_counter() - start
            return total / len(pairs) * 1e6

        serve(sweep=False)
        warm = sorted(serve(sweep=False) for _ in range(5))[2]
        chilled = sorted(serve(sweep=True) for _ in range(5))[2]
        print(f"\n=== page view, middleware alone: {warm:.1f} µs back to back, {chilled:.1f} cold")
        originals = {name: getattr(middleware, name) for name in COLD_STEPS}
        try:
            for name in COLD_STEPS:
                setattr(middleware, name, _timed(originals[name], spent, name))
            serve(sweep=True)
        finally:
            for name, original in originals.items():
                setattr(middleware, name, original)
    print("each step, cold (nested steps are inside their caller's time; a timer adds ~0.1 µs):")
    for name in COLD_STEPS:
        print(f"{spent[name] / len(environs) * 1e6:8.2f} µs  {name}")


def _requests_and_responses(environs: list[dict[str, Any]]) -> list[tuple[Any, Any]]:
    from django.core.handlers.wsgi import WSGIRequest
    from django.http import HttpResponse

    pairs = []
    for template in environs:
        environ = dict(template, **{"wsgi.input": io.BytesIO(b"")})
        request = WSGIRequest(environ)
        request.COOKIES  # noqa: B018 (parsed, as the stack's session and CSRF middleware do)
        pairs.append((request, HttpResponse("<html><body>page</body></html>")))
    return pairs


def _timed(function: Callable[..., Any], spent: dict[str, float], name: str) -> Callable[..., Any]:
    clock = time.perf_counter

    def timed(*args: Any, **kwargs: Any) -> Any:
        start = clock()
        try:
            return function(*args, **kwargs)
        finally:
            spent[name] += clock() - start

    return timed


class PassThroughMiddleware:
    """One more middleware that does nothing: what any middleware costs in Django's chain."""

    def __init__(self, get_response: Callable[[Any], Any]) -> None:
        self.get_response = get_response

    def __call__(self, request: Any) -> Any:
        return self.get_response(request)


@functools.cache
def _hollow() -> type:
    """Our middleware with ``process()`` skipped: its call around the view, and no more.

    Made on first use (see :func:`__getattr__`): importing the middleware wants Django set up.
    """
    from django_kameleoon.middleware import KameleoonMiddleware

    class HollowMiddleware(KameleoonMiddleware):
        def process(self, request: Any, response: Any, *, used: bool) -> None:
            pass

    return HollowMiddleware


@functools.cache
def _timed_middleware() -> type:
    """Our middleware with ``process()``'s thread CPU added up, written at exit as JSON to a
    file of ``BENCH_REPORT_DIR`` named for the process (``inserver``'s gunicorn workers; a
    server started by hand without it writes nothing)."""
    from django_kameleoon.middleware import KameleoonMiddleware

    spent = {"seconds": 0.0, "calls": 0}

    def report(directory: str) -> None:
        (Path(directory) / f"{os.getpid()}.json").write_text(json.dumps(spent))

    if "BENCH_REPORT_DIR" in os.environ:
        atexit.register(report, os.environ["BENCH_REPORT_DIR"])

    class TimedMiddleware(KameleoonMiddleware):
        def process(self, request: Any, response: Any, *, used: bool) -> None:
            start = time.thread_time()
            super().process(request, response, used=used)
            spent["seconds"] += time.thread_time() - start
            spent["calls"] += 1

    return TimedMiddleware


@functools.cache
def _made_at_once() -> type:
    """The threaded backend making a page view's events on the request path, as it did before
    it queued page views unmade (``BaseBackend.send_later``'s default): the same sender, the
    same events, only where they are made differs."""
    from django_kameleoon.backends.base import BaseBackend
    from django_kameleoon.backends.threaded import ThreadedBackend

    class MadeAtOnceBackend(ThreadedBackend):
        send_later = BaseBackend.send_later

    return MadeAtOnceBackend


def __getattr__(name: str) -> Any:
    """``HollowMiddleware``, ``TimedMiddleware`` and ``MadeAtOnceBackend``, for Django's
    ``import_string`` (here or as ``__main__``)."""
    if name == "HollowMiddleware":
        return _hollow()
    if name == "TimedMiddleware":
        return _timed_middleware()
    if name == "MadeAtOnceBackend":
        return _made_at_once()
    raise AttributeError(name)


#: The contestants of ``instack``: (name, middleware added to the stack, backend).
INSTACK = (
    ("stack", None, LOCMEM),
    ("pass-through", "benchmarks.profile.PassThroughMiddleware", LOCMEM),
    ("hollow", "benchmarks.profile.HollowMiddleware", LOCMEM),
    ("locmem", figures.OURS, LOCMEM),
    ("threaded", figures.OURS, "django_kameleoon.backends.threaded.ThreadedBackend"),
    ("at once", figures.OURS, "benchmarks.profile.MadeAtOnceBackend"),
)


def instack(sink: Sink, *, rounds: int = 9) -> None:
    import gc

    import django_kameleoon
    from django_kameleoon.middleware import KameleoonMiddleware

    environs = figures.page_view_environs()
    count = len(environs)
    handlers = {
        name: djsite.handler(
            djsite.with_middleware(extra) if extra else djsite.STARTPROJECT_MIDDLEWARE
        )
        for name, extra, _ in INSTACK
    }
    inside = {"process": 0.0, "gc": [0.0, 0.0, 0.0], "full": 0, "started": 0.0}
    measured: dict[str, dict[str, list[float]]] = {
        name: {"process": [], "gc0": [], "gc1": [], "gc2": [], "full": []} for name, _, _ in INSTACK
    }
    original = KameleoonMiddleware.process

    def timed_process(self: Any, request: Any, response: Any, *, used: bool) -> None:
        start = time.perf_counter()
        original(self, request, response, used=used)
        inside["process"] += time.perf_counter() - start

    def collecting(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            inside["started"] = time.perf_counter()
            return
        inside["gc"][info["generation"]] += time.perf_counter() - inside["started"]
        inside["full"] += info["generation"] == 2

    others: dict[str, list[float]] = {name: [] for name, _, _ in INSTACK}

    def serve(name: str, backend: str) -> float:
        """The request thread's CPU per request; the other threads' (the sender's, with the
        delivery of the round's events) is kept in ``others``."""
        with figures._override(figures._kameleoon(sink.url, BACKEND=backend)):
            inside.update(process=0.0, gc=[0.0, 0.0, 0.0], full=0)
            cpu, everyone = time.thread_time(), time.process_time()
            figures._serve(handlers[name], environs)
            cpu = time.thread_time() - cpu
            django_kameleoon.flush(60)
            everyone = time.process_time() - everyone - cpu
            others[name].append(everyone / count * 1e6)
            record = measured[name]
            record["process"].append(inside["process"] / count * 1e6)
            for generation, value in enumerate(inside["gc"]):
                record[f"gc{generation}"].append(value / count * 1e6)
            record["full"].append(inside["full"])
            django_kameleoon.outbox.clear()
        return cpu / count * 1e6

    contestants = {name: functools.partial(serve, name, backend) for name, _, backend in INSTACK}
    KameleoonMiddleware.process = timed_process  # type: ignore[method-assign]
    gc.callbacks.append(collecting)
    try:
        for run in contestants.values():  # warm-up
            run()
        for record in measured.values():
            for values in record.values():
                values.clear()
        for values in others.values():
            values.clear()
        series = alternate(contestants, rounds)
    finally:
        gc.callbacks.remove(collecting)
        KameleoonMiddleware.process = original  # type: ignore[method-assign]

    print(
        f"\n=== page view in a real stack: the request thread's CPU per request beyond the "
        f"stack alone ({series['stack'].median:.0f} µs), {rounds} rounds of {count:,}"
    )
    labels = {
        "pass-through": "one more middleware that does nothing",
        "hollow": "ours, process() skipped (our call around the view)",
        "locmem": "ours, events made at once and kept in memory (locmem backend)",
        "threaded": "ours, the sender making and delivering them (threaded backend)",
        "at once": "ours, threaded, the events made on the request path (as before)",
    }
    for name, label in labels.items():
        print(f"{series[name].over(series['stack']):8.1f} µs  {label}")
    for name in ("threaded", "at once"):
        sender = Series(name, others[name]).over(Series("stack", others["stack"]))
        print(f"{sender:8.1f} µs  in other threads, {name} (the sender: making, encoding, posting)")
    print("of which, with the threaded backend:")
    in_process = statistics.median(measured["threaded"]["process"])
    print(f"{in_process:8.1f} µs  inside process(), timed in place (wall)")
    for generation in range(3):
        ours, stack = (
            Series(name, measured[name][f"gc{generation}"]) for name in ("threaded", "stack")
        )
        more = ours.over(stack)
        print(f"{more:8.1f} µs  more garbage collection of generation {generation}")
    for name in series:
        print(f"    {name} rounds: " + ", ".join(f"{value:.0f}" for value in series[name].values))
    fulls = {name: sum(measured[name]["full"]) for name in ("stack", "threaded")}
    print(
        f"full collections in {rounds * count:,} requests: stack alone {fulls['stack']}, "
        f"with ours {fulls['threaded']} (each round starts after gc.collect())"
    )


#: ``inserver``'s contestants: ``loadsite.STACKS`` names.
INSERVER = ("stack", "timed", "hollow", "locmem")
INSERVER_SERVER = "gunicorn sync -w 2"


def inserver(sink: Sink, *, rounds: int = 5, seconds: float = 5.0) -> None:
    measured: dict[str, dict[str, list[float]]] = {
        name: {"main": [], "other": [], "process": []} for name in INSERVER
    }
    with tempfile.TemporaryDirectory(prefix="kameleoon-inserver-") as tmp:

        def contestant(name: str) -> float:
            reports = Path(tmp) / f"{name}-{len(measured[name]['main'])}"
            reports.mkdir()
            env = {"BENCH_REPORT_DIR": str(reports)}
            result = load.one_round(INSERVER_SERVER, name, sink, Path(tmp), seconds, 2.0, env)
            record = measured[name]
            record["main"].append(result["cpu_us"] - result["other_us"])
            record["other"].append(result["other_us"])
            spent = [json.loads(path.read_text()) for path in reports.glob("*.json")]
            calls = sum(s["calls"] for s in spent)
            record["process"].append(sum(s["seconds"] for s in spent) / max(calls, 1) * 1e6)
            return float(result["requests"])

        alternate({name: functools.partial(contestant, name) for name in INSERVER}, rounds)
    base = {key: Series("stack", measured["stack"][key]) for key in ("main", "other")}
    print(f"\n=== {INSERVER_SERVER} under load, {rounds} rounds of {seconds:g} s: CPU per request")
    print(f"stack alone: main threads {statistics.median(measured['stack']['main']):.0f} µs")
    for name in INSERVER[1:]:
        added = {key: Series(name, measured[name][key]).over(base[key]) for key in base}
        inside = statistics.median(measured[name]["process"])
        timed = f", process() in place {inside:.1f}" if name == "timed" else ""
        print(f"{name:>8}: main threads {added['main']:+.1f} µs, other threads "
              f"{added['other']:+.1f} µs{timed}")  # fmt: skip


def sender(sink: Sink) -> None:
    from django_kameleoon.backends.base import Counters
    from django_kameleoon.backends.delivery import Delivery
    from django_kameleoon.conf import get_settings
    from django_kameleoon.events import make_event

    codes = figures._visitor_codes(1000, seed=6)
    with figures._override(figures._kameleoon(sink.url)):
        events = [
            make_event(codes[i % 1000], "CONVERSION", {"goalId": 42, "revenue": 19.99})
            for i in range(50_000)
        ]
        delivery = Delivery(get_settings(), Counters())
        show("sender: Delivery.deliver(50,000)", lambda: delivery.deliver(events), len(events))
        delivery.close()


def useragent(sink: Sink) -> None:
    from django_kameleoon import useragent as ua

    fresh = useragents.fresh_user_agents(3000, seed=900, avoid=set())

    def run() -> None:
        for s in fresh:
            ua.parse(s)

    show("useragent.parse on new strings", run, len(fresh))


def main(argv: list[str]) -> None:
    names = argv or ["conversion", "pageview", "sender", "useragent"]
    guard_network()
    sink = Sink()
    try:
        djsite.configure(figures._kameleoon(sink.url))
        for name in names:
            {"conversion": conversion, "pageview": pageview, "sender": sender,
             "useragent": useragent, "opcodes": opcodes, "cold": cold,
             "instack": instack, "inserver": inserver}[name](sink)  # fmt: skip
    finally:
        sink.close()


if __name__ == "__main__":
    main(sys.argv[1:])
