"""The command line: the options, the banner, and serving until Ctrl-C or SIGTERM.

Shared by ``python -m django_kameleoon.collector`` and ``manage.py kameleoon_collector``.
"""

from __future__ import annotations

import argparse
import signal
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import FrameType

from django_kameleoon.collector.server import DEFAULT_HOST, DEFAULT_PORT, Collector, Stream


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options, shared by ``python -m django_kameleoon.collector`` and the manage command."""
    parser.add_argument("--host", default=DEFAULT_HOST, help="address to listen on")
    parser.add_argument(
        "--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT}; 0: any)"
    )
    parser.add_argument(
        "--site-code",
        default=None,
        help="accept only this siteCode (anything else is a violation); default: any",
    )
    parser.add_argument(
        "--jsonl", type=Path, default=None, help="append every event to this JSON Lines file"
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m django_kameleoon.collector",
        description="Run a strict local stand-in of Kameleoon's Data API and print what arrives.",
    )
    add_arguments(parser)
    return parser


@contextmanager
def stop_on_signals(stop: threading.Event) -> Iterator[None]:
    """Turn Ctrl-C and SIGTERM into ``stop.set()``, so shutdown is one clean path.

    Handlers can only be installed from the main thread; elsewhere (a test calling ``run``
    from a thread) the caller stops the collector through ``stop`` alone.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def banner(collector: Collector, site_code: str | None, jsonl: Path | None) -> list[str]:
    """The first lines: where the collector listens, and the setting that points a site at it."""
    lines = [
        f"Kameleoon Data API stand-in listening on {collector.url}",
        f'  point your site at it:  KAMELEOON["DATA_API_URL"] = "{collector.url}"',
        f"  siteCode: {site_code!r} only" if site_code else "  siteCode: any",
    ]
    if jsonl is not None:
        lines.append(f"  appending events to {jsonl}")
    lines.append("  Ctrl-C to stop")
    return lines


def run(
    options: argparse.Namespace,
    *,
    out: Stream | None = None,
    err: Stream | None = None,
    stop: threading.Event | None = None,
) -> int:
    """Serve until Ctrl-C, SIGTERM or ``stop``; 0 when clean, 1 after violations, 2 if unbound."""
    stop = stop or threading.Event()
    collector = Collector(
        host=options.host,
        port=options.port,
        site_code=options.site_code,
        jsonl=options.jsonl,
        out=out,
        err=err,
    )
    try:
        collector.start()
    except OSError as exc:
        collector.say(f"cannot listen on {options.host}:{options.port}: {exc}", error=True)
        return 2
    try:
        with stop_on_signals(stop):
            for line in banner(collector, options.site_code, options.jsonl):
                collector.say(line)
            stop.wait()
    except KeyboardInterrupt:
        pass  # a Ctrl-C that came before the handler was installed: stop all the same
    finally:
        collector.stop()
    for line in collector.summary():
        collector.say(line)
    return 1 if collector.server.violations else 0


def main(argv: Sequence[str] | None = None) -> int:
    return run(build_parser().parse_args(argv))
