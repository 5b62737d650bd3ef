"""``make durable``: the durable backends' figures, on this machine (local Redis, local sink).

1. Added request-path cost of one ``track_conversion`` per backend and mode, side by side in one
   run: the threaded backend, ``CeleryBackend`` batched and inline (Redis on loopback), and
   ``TasksBackend`` batched.
2. Events per second one Celery worker process (prefork, concurrency 1) delivers to the
   benchmarks' local sink, with ``MAX_BATCH_EVENTS`` events per task message.

Usage: ``python -m benchmarks.durable [--calls N] [--messages N]``; needs Redis on 127.0.0.1:6379.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
QUEUE = f"kameleoon-bench-{uuid.uuid4().hex[:8]}"
os.environ.update(
    DJANGO_SETTINGS_MODULE="tests.reliability.testsite.settings",
    KAMELEOON_TEST_BROKER="redis://127.0.0.1:6379/13",
    KAMELEOON_TEST_QUEUE=QUEUE,
)
sys.path.insert(0, str(ROOT))

import django  # noqa: E402

django.setup()

from django.test import override_settings  # noqa: E402

import django_kameleoon  # noqa: E402
from benchmarks.harness import Sink  # noqa: E402
from django_kameleoon.backends import reset_backend  # noqa: E402
from django_kameleoon.testing import DataApiServer  # noqa: E402

BATCH = 1000
MODES = {
    "threaded": {"BACKEND": "threaded"},
    "celery batched": {"BACKEND": "django_kameleoon.backends.celery.CeleryBackend"},
    "celery inline": {
        "BACKEND": "django_kameleoon.backends.celery.CeleryBackend",
        "HANDOFF": "inline",
    },
    # The Tasks framework's default (ImmediateBackend): batched, the request path is the same
    # append whatever the TASKS backend; the hand-off thread runs the task.
    "tasks batched": {"BACKEND": "django_kameleoon.backends.tasks.TasksBackend"},
}


def request_path_cost(url: str, calls: int) -> dict[str, tuple[float, float]]:
    """p50 and mean microseconds of one track_conversion, per mode, modes interleaved."""
    samples: dict[str, list[float]] = {mode: [] for mode in MODES}
    for round_ in range(5):
        for mode, extra in MODES.items():
            settings = {"SITE_CODE": "bench01", "DATA_API_URL": url, **extra}
            with override_settings(KAMELEOON=settings):
                django_kameleoon.track_conversion("warm-up", 1)
                django_kameleoon.flush(10)
                for n in range(calls // 5):
                    began = time.perf_counter()
                    django_kameleoon.track_conversion(f"bench-{round_}-{n}", 1, revenue=2.0)
                    samples[mode].append((time.perf_counter() - began) * 1e6)
                django_kameleoon.flush(30)
                reset_backend(30)
    return {mode: (statistics.median(s), statistics.fmean(s)) for mode, s in samples.items()}


def worker_rate(messages: int) -> float:
    """Events per second one worker process delivers to the benchmarks' fast local sink (the
    strict Data API stand-in validates every event and would be the limit), first arrival to
    last."""
    from django_kameleoon.events import make_event
    from tests.reliability.testsite.durable import app

    payloads = [
        [make_event(f"w-{m}-{n}", "CONVERSION", {"goalId": 1}).as_dict() for n in range(BATCH)]
        for m in range(messages)
    ]
    task = app.tasks["django_kameleoon.deliver_batch"]
    queue = f"{QUEUE}-worker"  # not the queue the request-path figures filled
    for payload in payloads:
        task.apply_async((payload,), queue=queue)
    sink = Sink()
    url = sink.url
    env = {
        **os.environ,
        "KAMELEOON_TEST_SETTINGS": f'{{"DATA_API_URL": "{url}", "MAX_BATCH_EVENTS": {BATCH}}}',
    }
    argv = [sys.executable, "-m", "celery", "--app=tests.reliability.testsite.durable"]
    argv += ["worker", "--pool=prefork", "--concurrency=1", "--loglevel=WARNING"]
    argv += ["--without-gossip", "--without-mingle", "--without-heartbeat", f"--queues={queue}"]
    worker = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.DEVNULL)
    total = messages * BATCH
    try:
        first = _when(lambda: sink.events("/visit/events") > 0, 60)
        last = _when(lambda: sink.events("/visit/events") >= total, 600)
        return (total - BATCH) / (last - first)
    finally:
        worker.terminate()
        worker.wait(30)
        sink.close()


def _when(condition: Callable[[], bool], timeout: float) -> float:
    """The ``time.monotonic()`` at which ``condition`` was first seen to hold."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise SystemExit("the worker did not deliver in time")
        time.sleep(0.005)
    return time.monotonic()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=5000)
    parser.add_argument("--messages", type=int, default=100)
    options = parser.parse_args()
    with DataApiServer(site_code="bench01") as sink:
        costs = request_path_cost(sink.url, options.calls)
        base = costs["threaded"][0]
        print("Request-path cost of one track_conversion (µs), one run, modes interleaved:")
        for mode, (p50, mean) in costs.items():
            print(f"  {mode:16} p50 {p50:8.1f}  mean {mean:8.1f}  ({p50 / base:.2f}x threaded)")
        rate = worker_rate(options.messages)
        print(f"One Celery worker process: {rate:,.0f} events/s ({BATCH} events per message)")
