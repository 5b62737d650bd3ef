"""The five figures. Each returns a :class:`Figure`: ours, the peer's, the ratio and the goal.

Every timed figure runs its contestants in alternating rounds (``harness.alternate``) and
compares medians. Django must be configured (``djsite.configure``) before these run.
"""

from __future__ import annotations

import contextlib
import gc
import io
import logging
import random
import statistics
import threading
import time
import tracemalloc
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from benchmarks import djsite, peer_middleware, useragents
from benchmarks.harness import Series, Sink, alternate, dead_url, interleave

__all__ = [
    "Figure",
    "conversion_call",
    "delivery",
    "growth",
    "memory",
    "new_user_agent",
    "page_view",
]

OURS = "django_kameleoon.middleware.KameleoonMiddleware"
PEER = "benchmarks.peer_middleware.SdkPageViewMiddleware"
SDK_EVENTS = "/sdk/visit/events"
OUR_EVENTS = "/visit/events"


@dataclass
class Figure:
    """One line of the table. ``limit`` is the goal's bound on ``value``; lower is better."""

    name: str
    unit: str
    ours: float
    peer: float | None
    peer_name: str
    value: float  # what the goal bounds: usually ours / peer
    limit: float | None
    goal: str
    rounds: dict[str, list[float]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    extra: list[Figure] = field(default_factory=list)  # further goals of the same figure
    at_least: bool = False  # the goal is a floor (throughput), not a ceiling

    @property
    def passed(self) -> bool | None:
        if self.limit is None:
            return None
        return self.value >= self.limit if self.at_least else self.value <= self.limit


def _rounds(series: dict[str, Series], scale: float = 1.0) -> dict[str, list[float]]:
    return {name: [v * scale for v in s.values] for name, s in series.items()}


def _kameleoon(sink_url: str, **overrides: Any) -> dict[str, Any]:
    return {
        "SITE_CODE": "benchsite1",
        "DATA_API_URL": sink_url,
        "BACKEND": "django_kameleoon.backends.threaded.ThreadedBackend",
        **overrides,
    }


def _override(kameleoon: dict[str, Any]) -> Any:
    from django.test.utils import override_settings

    return override_settings(KAMELEOON=kameleoon)


def _visitor_codes(count: int, seed: int) -> list[str]:
    r = random.Random(seed)
    alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
    return ["".join(r.choice(alphabet) for _ in range(16)) for _ in range(count)]


def _other_threads_cpu() -> float:
    """CPU seconds used so far by every thread but this one: senders, tracking threads, loops.

    A thread that ended is no longer counted; the senders measured here live for the run.
    """
    total, me = 0.0, threading.get_ident()
    for thread in threading.enumerate():
        if thread.ident is not None and thread.ident != me:
            with contextlib.suppress(OSError):  # it has just ended
                total += time.clock_gettime(time.pthread_getcpuclockid(thread.ident))
    return total


def _wait_for(sink: Sink, path: str, count: int, timeout: float) -> int:
    """Wait until the sink holds ``count`` events on ``path``; returns what it has."""
    deadline = time.monotonic() + timeout
    seen = sink.events(path)
    while seen < count and time.monotonic() < deadline:
        time.sleep(0.05)
        seen = sink.events(path)
    return seen


# --------------------------------------------------------------------------------------------
# Conversion call
# --------------------------------------------------------------------------------------------


def conversion_call(sink: Sink, sdk: Any, *, calls: int = 5000, rounds: int = 5) -> Figure:
    """Process CPU per ``track_conversion(code, goal, revenue=...)`` until it is delivered.

    The figure counts the calling thread's CPU during the calls plus every other thread's CPU
    from the first call until the sink holds the last event: our sender encoding and posting,
    or the SDK's tracking thread and event loop doing the same. That is what a conversion
    costs the process, wherever the work runs. The calling thread's own CPU (what the call
    alone costs the request) and the wall time of the loop are noted too; wall time favours
    the SDK, whose tracking thread wakes once a second and mostly runs after the loop.
    """
    import django_kameleoon

    codes = _visitor_codes(1000, seed=3)
    # Visitor code, goal and revenue vary the way a shop's do.
    args = [(codes[i % len(codes)], 40 + i % 7, 5.0 + (i % 50) * 1.25) for i in range(calls)]
    wall: dict[str, list[float]] = {"ours": [], "peer": []}
    caller: dict[str, list[float]] = {"ours": [], "peer": []}

    with _override(_kameleoon(sink.url)):
        track = django_kameleoon.track_conversion
        sdk_track = sdk.track_conversion

        def ours() -> float:
            start, cpu, others = time.perf_counter(), time.thread_time(), _other_threads_cpu()
            for code, goal, revenue in args:
                track(code, goal, revenue=revenue)
            cpu, elapsed = time.thread_time() - cpu, time.perf_counter() - start
            django_kameleoon.flush(60)  # our sender's work until delivered counts, not the wait
            others = _other_threads_cpu() - others
            wall["ours"].append(elapsed / calls * 1e6)
            caller["ours"].append(cpu / calls * 1e6)
            return (cpu + others) / calls

        def peer() -> float:
            before = sink.events(SDK_EVENTS)
            start, cpu, others = time.perf_counter(), time.thread_time(), _other_threads_cpu()
            for code, goal, revenue in args:
                sdk_track(code, goal, revenue)
            cpu, elapsed = time.thread_time() - cpu, time.perf_counter() - start
            # the SDK's tracking thread (every second) sends what it holds
            _wait_for(sink, SDK_EVENTS, before + calls, timeout=5)
            others = _other_threads_cpu() - others
            wall["peer"].append(elapsed / calls * 1e6)
            caller["peer"].append(cpu / calls * 1e6)
            return (cpu + others) / calls

        ours()  # warm-up: start the sender thread, open the connection
        peer()
        for values in (*wall.values(), *caller.values()):
            values.clear()
        series = alternate({"ours": ours, "peer": peer}, rounds)
        django_kameleoon.flush(60)
        stats = _backend_stats()
    o, p = series["ours"].median, series["peer"].median
    wo, wp = (statistics.median(wall[name]) for name in ("ours", "peer"))
    co, cp = (statistics.median(caller[name]) for name in ("ours", "peer"))
    return Figure(
        name="Conversion (process CPU, delivered)",
        unit="µs/call",
        ours=o * 1e6,
        peer=p * 1e6,
        peer_name="kameleoon-client-python track_conversion",
        value=o / p,
        limit=0.4,
        goal="ours <= 0.4x SDK",
        rounds=_rounds(series, 1e6),
        notes=[
            f"{calls:,} calls a round over 1,000 visitor codes, {rounds} rounds + warm-up; the "
            "figure is the process's CPU per call until every event reached the sink: the "
            "calling thread's during the calls, every other thread's (sender, SDK tracking "
            "thread and event loop) from the first call until delivered",
            f"calling thread's CPU alone: ours {co:.2f} µs, SDK {cp:.2f} µs ({co / cp:.2f}x)",
            f"wall time of the loop, background threads running: ours {wo:.2f} µs, SDK "
            f"{wp:.2f} µs ({wo / wp:.2f}x); ours delivered everything: {stats}",
        ],
    )


def _backend_stats() -> dict[str, int]:
    from django_kameleoon.backends import get_backend

    return get_backend().stats()


# --------------------------------------------------------------------------------------------
# Page view
# --------------------------------------------------------------------------------------------

LANGUAGES = [
    "en-US,en;q=0.9",
    "fr-FR,fr;q=0.9,en-US;q=0.8,en;q=0.7",
    "de-DE,de;q=0.9,en;q=0.8",
    "en-GB,en;q=0.9",
    "es-ES,es;q=0.9",
    "it-IT,it;q=0.9,en;q=0.8",
    "nl-NL,nl;q=0.9,en;q=0.8",
    "pt-BR,pt;q=0.9",
    "ja",
    "*",
]
REFERERS = [
    "https://www.google.com/",
    "https://shop.example.com/",
    "https://shop.example.com/category/new/",
    "https://www.facebook.com/",
    "https://duckduckgo.com/",
]


def _path(r: random.Random) -> str:
    roll = r.random()
    if roll < 0.25:
        return "/"
    if roll < 0.65:
        return f"/products/{r.randint(1, 400)}/"
    if roll < 0.85:
        return f"/category/{r.choice(['new', 'sale', 'shoes', 'bags', 'kids'])}/"
    return f"/blog/{r.choice(['summer-sale', 'how-to-choose', 'our-story', 'care-guide'])}/"


def page_view_environs(
    count: int = 4000,
    new_share: float = 0.3,
    *,
    agents: int = 1000,
    visitors: int = 1500,
    seed: int = 2,
    renewal_share: float = 0.05,
) -> list[dict[str, Any]]:
    """``count`` WSGI environs: User-Agents drawn Zipf-like from ``agents`` distinct ones,
    ``new_share`` without a visitor cookie, the others with one of ``visitors`` codes.

    A returning browser sends back both cookies the middleware set, the code and the one that
    dates it (``visitor.renewed_cookie_name``), except for ``renewal_share`` of returning
    visits, which come after ``COOKIE_REFRESH_INTERVAL`` (a day) and have their cookie renewed.
    """
    pool = useragents.distinct_user_agents(agents)
    draws = useragents.zipf_indices(count, len(pool), seed=seed)
    returning = _visitor_codes(visitors, seed=4)
    r = random.Random(5)
    environs = []
    for index in draws:
        path = _path(r)
        query = "utm_source=newsletter&utm_medium=email" if r.random() < 0.1 else ""
        environ: dict[str, Any] = {
            "REQUEST_METHOD": "GET",
            "SCRIPT_NAME": "",
            "PATH_INFO": path,
            "QUERY_STRING": query,
            "SERVER_NAME": djsite.HOST,
            "SERVER_PORT": "443",
            "SERVER_PROTOCOL": "HTTP/1.1",
            "REMOTE_ADDR": f"203.0.113.{r.randint(1, 254)}",
            "HTTP_HOST": djsite.HOST,
            "HTTP_USER_AGENT": pool[index],
            "HTTP_ACCEPT": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
            "HTTP_ACCEPT_LANGUAGE": r.choice(LANGUAGES),
            "HTTP_ACCEPT_ENCODING": "gzip, deflate, br",
            "HTTP_X_FORWARDED_PROTO": "https",
            "wsgi.url_scheme": "https",
            "wsgi.version": (1, 0),
            "wsgi.errors": io.StringIO(),
            "wsgi.multithread": True,
            "wsgi.multiprocess": True,
            "wsgi.run_once": False,
        }
        if r.random() < 0.6:
            environ["HTTP_REFERER"] = r.choice(REFERERS)
        if r.random() >= new_share:
            code = r.choice(returning)
            cookie = f"kameleoonVisitorCode={code}; _ga=GA1.2.{r.randint(10**8, 10**9)}.1700000000"
            if r.random() >= renewal_share:
                cookie += "; kameleoonVisitorCodeRefreshed=1"
            environ["HTTP_COOKIE"] = cookie
        environs.append(environ)
    return environs


def _start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
    if not status.startswith("200"):
        raise AssertionError(f"benchmark page answered {status}")
    return None


def _serve(handler: Any, environs: Iterable[dict[str, Any]]) -> None:
    """Each request as a WSGI server makes it: a fresh environ, the body read, then close()."""
    for template in environs:
        environ = dict(template)
        environ["wsgi.input"] = io.BytesIO(b"")
        response = handler(environ, _start_response)
        for _chunk in response:
            pass
        response.close()


#: Requests per turn of the page-view figure's contestants (``harness.interleave``).
PAGE_VIEW_CHUNK = 250


def page_view(sink: Sink, sdk: Any, *, rounds: int = 5) -> Figure:
    """Time per request: the stack alone, with our middleware, with the SDK peer middleware,
    taking turns of ``PAGE_VIEW_CHUNK`` requests (``interleave``); what ours and the peer add
    is the median of the rounds' differences (``Series.over``). Each turn of ours and of the
    peer ends when its events are delivered, so no sender works in another's turn."""
    import django_kameleoon
    from django_kameleoon import useragent

    environs = page_view_environs()
    count = len(environs)
    tracked = {id(e) for e in environs if not useragent.parse(e["HTTP_USER_AGENT"]).is_bot}
    pages = len(tracked)
    turns = -(-count // PAGE_VIEW_CHUNK)
    peer_middleware.client = sdk
    with _override(_kameleoon(sink.url)):
        stack = djsite.handler(djsite.STARTPROJECT_MIDDLEWARE)
        with_ours = djsite.handler(djsite.with_middleware(OURS))
        with_peer = djsite.handler(djsite.with_middleware(PEER))
        delivered: list[int] = []
        cpu: dict[str, list[float]] = {"stack": [], "ours": [], "peer": []}
        # The process's CPU per request until the round's events are delivered: the request
        # thread's, plus every other thread's (our sender; the SDK's tracking thread and loop).
        process: dict[str, list[float]] = {"stack": [], "ours": [], "peer": []}

        def serve(
            name: str, handler: Any, piece: list[Any], deliver: Callable[[], object] = lambda: None
        ) -> float:
            start, thread, others = time.perf_counter(), time.thread_time(), _other_threads_cpu()
            _serve(handler, piece)
            elapsed, thread = time.perf_counter() - start, time.thread_time() - thread
            deliver()  # untimed: deliver before the next contestant runs
            others = _other_threads_cpu() - others
            cpu[name].append(thread)
            process[name].append(thread + others)
            return elapsed

        def run_stack(piece: list[Any]) -> float:
            return serve("stack", stack, piece)

        def run_ours(piece: list[Any]) -> float:
            before = sink.events(OUR_EVENTS)
            elapsed = serve("ours", with_ours, piece, lambda: django_kameleoon.flush(60))
            delivered.append(sink.events(OUR_EVENTS) - before)
            return elapsed

        def run_peer(piece: list[Any]) -> float:
            target = sink.events(SDK_EVENTS) + 2 * sum(id(e) in tracked for e in piece)
            return serve("peer", with_peer, piece, lambda: _wait_for(sink, SDK_EVENTS, target, 3))

        contestants = {"stack": run_stack, "ours": run_ours, "peer": run_peer}
        for warm in contestants.values():  # warm-up: caches, templates, threads, connections
            warm(environs)
        delivered.clear()
        for values in (*cpu.values(), *process.values()):
            values.clear()
        series = interleave(contestants, environs, rounds, chunk=PAGE_VIEW_CHUNK)
        # Each round's turns, summed: per request, in µs.
        for values in (*cpu.values(), *process.values()):
            values[:] = [
                sum(values[i : i + turns]) / count * 1e6 for i in range(0, len(values), turns)
            ]
        delivered[:] = [sum(delivered[i : i + turns]) for i in range(0, len(delivered), turns)]

    a, b, c = (series[name].median for name in ("stack", "ours", "peer"))
    # What ours and the peer add: the median of the rounds' differences (Series.over).
    ours_added, peer_added = (series[name].over(series["stack"]) for name in ("ours", "peer"))
    # Per tracked page view: what the process spends beyond the stack alone, all threads.
    per_view = {name: Series(name, [v * count / pages for v in process[name]]) for name in process}
    ours_view, peer_view = (per_view[name].over(per_view["stack"]) for name in ("ours", "peer"))
    expected = 2 * pages
    figure = Figure(
        name="Page view: added cost (wall)",
        unit="µs/req",
        ours=ours_added * 1e6,
        peer=peer_added * 1e6,
        peer_name="user-agents + SDK middleware",
        value=ours_added / peer_added,
        limit=0.1,
        goal="(b-a) <= 0.1x (c-a)",
        rounds=_rounds(series, 1e6),
        notes=[
            f"{count:,} requests a round from 1,000 User-Agents (Zipf), 30% new visitors, "
            f"{count - pages} from crawlers; {rounds} rounds + warm-up, the contestants taking "
            f"turns of {PAGE_VIEW_CHUNK} requests, each delivering its events in its own turn",
            f"a) stack alone {a * 1e6:.1f} µs, b) + ours {b * 1e6:.1f} µs, "
            f"c) + peer {c * 1e6:.1f} µs per request (medians of wall time); the figure is the "
            "median of the rounds' differences from a), b-a and c-a, round by round",
            "request thread's own CPU time (no background threads): "
            + ", ".join(f"{n} {statistics.median(v):.1f} µs" for n, v in cpu.items()),
            "process CPU per request, every thread, until delivered: "
            + ", ".join(f"{n} {statistics.median(v):.1f} µs" for n, v in process.items()),
            f"ours delivered {min(delivered, default=0):,}-{max(delivered, default=0):,} "
            f"events a round to the sink (expected {expected:,}: STATICDATA + PAGE per page)",
        ],
    )
    figure.extra.append(
        Figure(
            name="Page view: process CPU per tracked view",
            unit="µs/view",
            ours=ours_view,
            peer=peer_view,
            peer_name="user-agents + SDK middleware",
            value=ours_view / peer_view,
            limit=None,
            goal="(stated: request path + sender)",
        )
    )
    figure.extra.append(
        Figure(
            name="Page view: whole request (wall)",
            unit="µs/req",
            ours=b * 1e6,
            peer=a * 1e6,
            peer_name="the stack alone",
            value=b / a,
            limit=1.3,
            goal="b <= 1.3x a",
        )
    )
    return figure


# --------------------------------------------------------------------------------------------
# Growth: page view cost against distinct User-Agents and distinct visitors
# --------------------------------------------------------------------------------------------

#: (curve, distinct count, page_view_environs options) for each point; a curve's first point
#: is the base the others are compared with.
GROWTH_POINTS: list[tuple[str, int, dict[str, Any]]] = [
    *(("User-Agents", n, {"agents": n}) for n in (1000, 10_000, 100_000)),
    *(("visitors", n, {"visitors": n, "new_share": 0.0}) for n in (1, 100, 10_000)),
]


def growth(sink: Sink, *, requests: int = 2000, rounds: int = 3) -> Figure:
    """Our added cost per page view as distinct User-Agents and distinct visitors grow.

    Each point serves fresh requests every round (the warm-up's draws are not repeated), so
    a User-Agent beyond the parse cache (10,000 entries) is parsed again, and those misses
    are in the figure. The added cost is ours minus the stack alone, on the same requests, in
    alternating order: the median of the rounds' differences (``Series.over``). The cost is
    process CPU (the request thread's, plus the sender's until the round is delivered), which a
    busy machine inflates less than wall time. Visitors: ``n`` distinct codes over the round's
    requests, every request with a cookie; the rate in visitors per second is what the round
    reached (one process serves a few thousand requests a second, so at 10,000 codes nearly
    every request is a new visitor).
    """
    from django_kameleoon import pageview, useragent

    added: dict[tuple[str, int], float] = {}
    notes: list[str] = []
    with _override(_kameleoon(sink.url)):
        stack = djsite.handler(djsite.STARTPROJECT_MIDDLEWARE)
        with_ours = djsite.handler(djsite.with_middleware(OURS))
        for curve, n, options in GROWTH_POINTS:
            everything = page_view_environs(requests * (rounds + 1), seed=20 + n % 97, **options)
            chunks = [everything[i * requests : (i + 1) * requests] for i in range(rounds + 1)]
            useragent._parse_cached.cache_clear()
            pageview.static_fields.cache_clear()
            misses = useragent._parse_cached.cache_info().misses
            series, seconds = _growth_rounds(stack, with_ours, chunks, rounds)
            misses = useragent._parse_cached.cache_info().misses - misses
            added[curve, n] = series["ours"].over(series["stack"]) * 1e6
            if curve == "User-Agents":
                share = misses / ((rounds + 1) * requests)
                detail = f"{share:.0%} of requests (warm-up included) parsed a new User-Agent"
            else:
                codes = len({e.get("HTTP_COOKIE", "")[:40] for c in chunks[1:] for e in c})
                detail = f"{codes / sum(seconds):,.1f} distinct visitors/s reached"
            notes.append(
                f"{n:,} {curve}: ours adds {added[curve, n]:.1f} µs CPU per request; {detail}"
            )

    lines = []
    for curve, n, _ in GROWTH_POINTS:
        base_n = next(m for c, m, _ in GROWTH_POINTS if c == curve)
        if n == base_n:
            continue
        ours, base = added[curve, n], added[curve, base_n]
        lines.append(
            Figure(
                name=f"Growth: page view, {n:,} {curve}",
                unit="µs/req",
                ours=ours,
                peer=base,
                peer_name=f"ours at {base_n:,} {curve}",
                value=ours / base,
                limit=1.5,
                goal=f"flat: <= 1.5x at {base_n:,}",
            )
        )
    first, *extra = lines
    first.extra = extra
    first.notes = [
        f"added process CPU per request (ours - stack), {rounds} rounds of {requests:,} fresh "
        "requests per point + warm-up, Zipf-drawn User-Agents, 30% new visitors on the "
        "User-Agent curve",
        *notes,
    ]
    return first


def _growth_rounds(
    stack: Any, with_ours: Any, chunks: list[list[dict[str, Any]]], rounds: int
) -> tuple[dict[str, Series], list[float]]:
    """Process CPU per request of both handlers, each round on the next chunk; ours' seconds."""
    import django_kameleoon

    turn = {"stack": 0, "ours": 0}
    seconds: list[float] = []

    def run(name: str, handler: Any) -> float:
        chunk = chunks[turn[name]]
        turn[name] += 1
        start, cpu, others = time.perf_counter(), time.thread_time(), _other_threads_cpu()
        _serve(handler, chunk)
        elapsed, cpu = time.perf_counter() - start, time.thread_time() - cpu
        if name == "ours":
            seconds.append(elapsed)
            django_kameleoon.flush(60)  # the sender's share counts
        return (cpu + _other_threads_cpu() - others) / len(chunk)

    run("stack", stack), run("ours", with_ours)  # warm-up on chunk 0
    seconds.clear()
    series = alternate(
        {"stack": lambda: run("stack", stack), "ours": lambda: run("ours", with_ours)}, rounds
    )
    return series, seconds


# --------------------------------------------------------------------------------------------
# Delivery
# --------------------------------------------------------------------------------------------


def delivery(sink: Sink, *, events: int = 50_000, rounds: int = 3) -> Figure:
    """Wall time from the first of 50,000 calls until flush() returns, ours vs posthog's."""
    import django_kameleoon
    from benchmarks.peers import make_posthog

    codes = _visitor_codes(1000, seed=6)
    args = [(codes[i % len(codes)], 40 + i % 7, 5.0 + (i % 50) * 1.25) for i in range(events)]
    # Both queues hold the whole burst, so neither side can win by dropping events.
    posthog = make_posthog(sink.url, max_queue_size=2 * events)
    counts: dict[str, list[int]] = {"ours": [], "peer": []}

    with _override(_kameleoon(sink.url, MAX_QUEUE_SIZE=2 * events)):
        track = django_kameleoon.track_conversion

        def ours() -> float:
            before = sink.events(OUR_EVENTS)
            start = time.perf_counter()
            for code, goal, revenue in args:
                track(code, goal, revenue=revenue)
            if not django_kameleoon.flush(120):
                raise RuntimeError("our flush() timed out")
            elapsed = time.perf_counter() - start
            counts["ours"].append(sink.events(OUR_EVENTS) - before)
            return elapsed

        def peer() -> float:
            before = sink.events("/batch/")
            start = time.perf_counter()
            for code, goal, revenue in args:
                posthog.capture(
                    "conversion", distinct_id=code, properties={"goal": goal, "revenue": revenue}
                )
            posthog.flush(timeout_seconds=120)
            elapsed = time.perf_counter() - start
            counts["peer"].append(sink.events("/batch/") - before)
            return elapsed

        series = alternate({"ours": ours, "peer": peer}, rounds)
        requests = _backend_stats().get("requests", 0)
    posthog.shutdown()
    o, p = series["ours"].median, series["peer"].median
    return Figure(
        name="Delivery of 50,000",
        unit="s",
        ours=o,
        peer=p,
        peer_name="posthog capture + flush",
        value=o / p,
        limit=0.15,
        goal="ours <= 0.15x posthog",
        rounds=_rounds(series),
        notes=[
            f"{events:,} conversions a round, {rounds} rounds; events that reached the sink: "
            f"ours {counts['ours']}, posthog {counts['peer']}; ours used {requests} requests "
            f"in all; both queues sized {2 * events:,}, posthog otherwise at its defaults"
        ],
    )


# --------------------------------------------------------------------------------------------
# New user agent
# --------------------------------------------------------------------------------------------


def new_user_agent(*, per_round: int = 2000, rounds: int = 5) -> Figure:
    """``useragent.parse`` on User-Agents it has never seen, vs ``user_agents.parse``."""
    import user_agents

    from django_kameleoon import useragent

    seen = set(useragents.distinct_user_agents(1000))
    batches = [
        useragents.fresh_user_agents(per_round, seed=100 + n, avoid=seen) for n in range(rounds + 1)
    ]
    turn = {"ours": 0, "peer": 0}

    def ours() -> float:
        batch = batches[turn["ours"]]
        turn["ours"] += 1
        parse = useragent.parse
        start = time.perf_counter()
        for ua in batch:
            parse(ua)
        return (time.perf_counter() - start) / len(batch)

    def peer() -> float:
        batch = batches[turn["peer"]]
        turn["peer"] += 1
        parse = user_agents.parse
        answers: list[tuple[Any, ...]] = []
        start = time.perf_counter()
        for ua in batch:
            info = parse(ua)
            # what ours returns: family, version, OS, device class, bot
            answers.append(
                (info.browser.family, info.browser.version, info.os.family, info.is_tablet)
            )
            answers.append((info.is_mobile, info.is_bot))
        return (time.perf_counter() - start) / len(batch)

    ours(), peer()  # warm-up on a batch of its own
    series = alternate({"ours": ours, "peer": peer}, rounds)
    o, p = series["ours"].median, series["peer"].median
    return Figure(
        name="New user agent",
        unit="µs/parse",
        ours=o * 1e6,
        peer=p * 1e6,
        peer_name="user_agents.parse",
        value=o / p,
        limit=0.1,
        goal="ours <= 0.1x user-agents",
        rounds=_rounds(series, 1e6),
        notes=[
            f"{per_round:,} never-seen User-Agents a round, each parsed once by each side",
            "ours includes the bot decision: bots.is_bot runs inside useragent.parse for every "
            "new header (tests/test_bots.py::test_a_new_user_agent_gets_the_bot_decision)",
        ],
    )


# --------------------------------------------------------------------------------------------
# Memory
# --------------------------------------------------------------------------------------------


def memory(*, events: int = 10_000, rounds: int = 3) -> Figure:
    """Bytes held per queued conversion while the API is down (tracemalloc), ours vs the SDK's."""
    down = dead_url()
    values: dict[str, list[float]] = {"ours": [], "peer": []}
    dropped: list[int] = []
    with _quiet():
        for n in range(rounds):
            _memory_round(n, down, events, values, dropped)
    o, p = statistics.median(values["ours"]), statistics.median(values["peer"])
    return Figure(
        name="Memory per queued event",
        unit="bytes",
        ours=o,
        peer=p,
        peer_name="SDK track_conversion, API down",
        value=o,
        limit=400,
        goal="ours < 400 B",
        rounds=values,
        notes=[
            f"tracemalloc over {events:,} conversions (1,000 visitors) with nothing listening "
            f"at the API's address; {rounds} rounds; ours dropped {dropped} (must be 0)"
        ],
    )


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Silence both sides' failure logs while the API is down on purpose."""
    from kameleoon.logging.kameleoon_logger import KameleoonLogger
    from kameleoon.logging.log_level import LogLevel

    ours = logging.getLogger("django_kameleoon")
    saved_level, saved_sdk = ours.level, KameleoonLogger._log_level
    ours.setLevel(logging.CRITICAL)
    KameleoonLogger.set_log_level(LogLevel.NONE)
    try:
        yield
    finally:
        ours.setLevel(saved_level)
        KameleoonLogger.set_log_level(saved_sdk)


def _memory_round(
    n: int, down: str, events: int, values: dict[str, list[float]], dropped: list[int]
) -> None:
    import django_kameleoon
    from benchmarks.peers import close_sdk_client, make_sdk_client
    from django_kameleoon.backends import reset_backend

    codes = _visitor_codes(1000, seed=50 + n)
    args = [(codes[i % len(codes)], 40 + i % 7, 5.0 + (i % 50) * 1.25) for i in range(events)]
    with _override(_kameleoon(down, MAX_QUEUE_SIZE=events, RETRY_BACKOFF=5.0)):
        track = django_kameleoon.track_conversion

        def ours() -> None:
            for code, goal, revenue in args:
                track(code, goal, revenue=revenue)

        values["ours"].append(_bytes_per_event(ours, events))
        dropped.append(_backend_stats()["dropped"])
        reset_backend(0)
    sdk = make_sdk_client(down, ready=False)

    def peer() -> None:
        for code, goal, revenue in args:
            sdk.track_conversion(code, goal, revenue)

    values["peer"].append(_bytes_per_event(peer, events))
    close_sdk_client(sdk)


def _bytes_per_event(run: Callable[[], None], events: int) -> float:
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        run()
        gc.collect()
        after = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    return (after - before) / events
