"""``make bench``: every figure, ours against a peer, side by side in one run, on this machine only.

Usage: ``python -m benchmarks.run [--quick] [--only NAME ...] [--no-write] [--strict]``

Prints one table (ours, the peer's, the ratio, the goal, PASS/MISS), then how each figure was
made and every round's value, and writes the same text to ``benchmarks/last-run.txt`` and the
numbers to ``benchmarks/results.json``. Nothing leaves the machine: every client talks to a
local sink, and ``harness.guard_network`` refuses any other address.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Any

from benchmarks import djsite, figures, harness
from benchmarks.figures import Figure
from benchmarks.harness import Sink, guard_network

HERE = Path(__file__).parent
ALL = ("conversion", "pageview", "growth", "delivery", "useragent", "memory", "load")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="3 rounds everywhere (a smoke run)")
    parser.add_argument("--only", nargs="+", choices=ALL, help="run only these figures")
    parser.add_argument("--no-write", action="store_true", help="do not write last-run files")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a goal is missed")
    options = parser.parse_args(argv)
    wanted = set(options.only or ALL)
    rounds = 3 if options.quick else 5

    guard_network()
    load_before = os.getloadavg()[0]
    started = time.perf_counter()
    sink = Sink()
    results: list[Figure] = []
    try:
        djsite.configure(figures._kameleoon(sink.url))
        from benchmarks.peers import close_sdk_client, make_sdk_client

        # One SDK client for the run, as a site has one; its URLs are prefixed /sdk so the sink
        # counts its tracking apart from ours.
        sdk = make_sdk_client(sink.url + "/sdk")
        check = strict_api_check()
        step("strict Data API check", check)
        if "conversion" in wanted:
            results.append(
                step("conversion call", figures.conversion_call(sink, sdk, rounds=rounds))
            )
        if "pageview" in wanted:
            # The noisiest figure (a difference of differences): more rounds.
            page_rounds = rounds if options.quick else 7
            results.append(step("page view", figures.page_view(sink, sdk, rounds=page_rounds)))
        if "growth" in wanted:
            growth_rounds = 2 if options.quick else 5
            results.append(step("growth", figures.growth(sink, rounds=growth_rounds)))
        if "delivery" in wanted:
            results.append(step("delivery", figures.delivery(sink, rounds=3)))
        if "useragent" in wanted:
            results.append(step("new user agent", figures.new_user_agent(rounds=rounds)))
        if "memory" in wanted:
            results.append(step("memory", figures.memory(rounds=3)))
        close_sdk_client(sdk)
        if "load" in wanted:
            from benchmarks.load import load

            # Real servers in their own processes; quick: 2 rounds of 3 s.
            timing = {"rounds": 2, "seconds": 3.0} if options.quick else {}
            for figure in load(sink, **timing):
                results.append(step(figure.name, figure))
    finally:
        sink.close()
    elapsed = time.perf_counter() - started
    load = (load_before, os.getloadavg()[0])

    text = report(results, check, elapsed, load)
    print(text)
    if not options.no_write:
        (HERE / "last-run.txt").write_text(text + "\n", encoding="utf-8")
        (HERE / "results.json").write_text(
            json.dumps(as_json(results, elapsed, load), indent=2) + "\n", encoding="utf-8"
        )
    missed = [f for f in _lines(results) if f.passed is False]
    return 1 if options.strict and missed else 0


def step(name: str, value: Any) -> Any:
    print(f"  ... {name} done", file=sys.stderr, flush=True)
    return value


def strict_api_check() -> str:
    """Send a sample of the benchmark's traffic to the strict local Data API (``testing``).

    The figures use a fast sink that only counts; this shows that what the benchmarked
    configuration sends is what the API accepts, event for event.
    """
    import django_kameleoon
    from django_kameleoon.testing import DataApiServer

    environs = figures.page_view_environs(300)
    with DataApiServer(site_code="benchsite1") as api:
        with figures._override(figures._kameleoon(api.url)):
            handler = djsite.handler(djsite.with_middleware(figures.OURS))
            figures._serve(handler, environs)
            for n in range(200):
                django_kameleoon.track_conversion(f"checkvisitor{n:04d}", 42, revenue=n + 0.5)
            django_kameleoon.flush(30)
        events, violations = api.events, api.violations
    kinds: dict[str, int] = {}
    for event in events:
        kinds[event["eventType"]] = kinds.get(event["eventType"], 0) + 1
    if violations:
        raise SystemExit(f"the strict Data API refused the benchmark's events: {violations[:5]}")
    summary = ", ".join(f"{n} {kind}" for kind, n in sorted(kinds.items()))
    return f"{len(events)} events ({summary}) accepted by the strict local Data API, 0 violations"


def _lines(results: list[Figure]) -> list[Figure]:
    return [line for figure in results for line in (figure, *figure.extra)]


def _number(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    if unit == "bytes":
        return f"{value:,.0f} B"
    if unit == "s":
        return f"{value:.2f} s"
    if unit == "ms":
        return f"{value:.2f} ms"
    if unit == "req/s":
        return f"{value:,.0f}/s"
    if abs(value) >= 100:
        return f"{value:,.0f} µs"
    return f"{value:.2f} µs" if abs(value) < 10 else f"{value:.1f} µs"


def report(
    results: list[Figure], check: str, elapsed: float, load: tuple[float, float] = (0.0, 0.0)
) -> str:
    header = ["figure", "ours", "peer", "ratio", "goal", "result", "peer is"]
    rows = []
    for line in _lines(results):
        ratio = line.ours / line.peer if line.peer else None
        verdict = {True: "PASS", False: "MISS", None: "-"}[line.passed]
        rows.append(
            [
                line.name,
                _number(line.ours, line.unit),
                _number(line.peer, line.unit),
                "-" if ratio is None else f"{ratio:.3f}x",
                line.goal,
                verdict,
                line.peer_name,
            ]
        )
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    out = [
        f"django-kameleoon benchmarks, {datetime.datetime.now().isoformat(timespec='seconds')}",
        f"{environment()}",
        "",
        "  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)).rstrip(),
        "  ".join("-" * w for w in widths),
    ]
    for row in rows:
        cells = [
            c.ljust(w) if i != 1 and i != 2 else c.rjust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=True))
        ]
        out.append("  ".join(cells).rstrip())
    out += [
        "",
        "ratio = ours / peer; lower is better, except throughput (its goal is a floor). Every "
        "figure is a median of alternating rounds.",
        f"- check: {check}",
        f"- network guard: {len(harness.blocked)} attempt(s) to reach beyond 127.0.0.1 refused"
        + (f" ({', '.join(sorted(set(harness.blocked))[:5])})" if harness.blocked else ""),
    ]
    for figure in results:
        for note in figure.notes:
            out.append(f"- {figure.name}: {note}")
        for name, values in figure.rounds.items():
            shown = ", ".join(f"{v:.4g}" for v in values)
            out.append(f"    {name} rounds: {shown}")
    out.append(f"Whole run: {elapsed:.0f} s. {_load_note(load)}")
    return "\n".join(out)


def _load_note(load: tuple[float, float]) -> str:
    """The machine's load around the run: the benchmark itself keeps about 1.5 cores busy."""
    cores = os.cpu_count() or 1
    text = f"1-minute load average {load[0]:.1f} before, {load[1]:.1f} after ({cores} cores)."
    if max(load) > cores + 0.5:
        text += (
            " WARNING: other processes competed for the CPU during this run; its figures are"
            " noisier than usual, run it again on a quiet machine."
        )
    return text


def environment() -> str:
    versions = []
    for name in ("django-kameleoon", "Django", "kameleoon-client-python", "posthog",
                 "user-agents", "ua-parser"):  # fmt: skip
        try:
            versions.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            versions.append(f"{name} (missing)")
    return (
        f"Python {platform.python_version()} on {platform.machine()}, {os.cpu_count()} cores; "
        + ", ".join(versions)
    )


def as_json(results: list[Figure], elapsed: float, load: tuple[float, float]) -> dict[str, Any]:
    return {
        "when": datetime.datetime.now().isoformat(timespec="seconds"),
        "environment": environment(),
        "seconds": round(elapsed, 1),
        "load_average": {"before": load[0], "after": load[1], "cores": os.cpu_count()},
        "figures": [
            {
                "name": f.name,
                "unit": f.unit,
                "ours": f.ours,
                "peer": f.peer,
                "peer_name": f.peer_name,
                "value": f.value,
                "limit": f.limit,
                "goal": f.goal,
                "passed": f.passed,
                "rounds": f.rounds,
                "notes": f.notes,
            }
            for f in _lines(results)
        ],
    }


if __name__ == "__main__":
    sys.exit(main())
