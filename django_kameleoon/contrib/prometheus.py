"""Export the delivery counters (``stats()``) to Prometheus with prometheus_client.

Needs the ``prometheus`` extra. Each process copies its own counters into prometheus_client
metrics (:meth:`Exporter.sync`): at each scrape it answers (:func:`metrics_view`), every
``interval`` seconds in a daemon thread (:func:`start`), and once more when a gunicorn worker
stops (:func:`worker_exit`), after it delivered what it held. Copies, not a collector that reads
``stats()`` at scrape time, because under gunicorn the scrape reaches one worker: in
prometheus_client's multiprocess mode (``PROMETHEUS_MULTIPROC_DIR`` set) every process writes
its metrics to files there, and the worker that answers sums them, those of workers that have
exited included (counters; the ``queued`` gauge counts live workers, which
:func:`child_exit` keeps true).

Metrics: ``kameleoon_events_sent_total``, ``kameleoon_events_retried_total``,
``kameleoon_events_dropped_total{reason}`` (``reason``: a code of
``backends.reporting.REASONS``), ``kameleoon_requests_total`` and ``kameleoon_events_queued``.
"""

from __future__ import annotations

import os
import threading
from typing import Any

from django.http import HttpRequest, HttpResponse
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    generate_latest,
    multiprocess,
)

from django_kameleoon.backends import BaseBackend, current_backend
from django_kameleoon.lifecycle import deliver_pending

__all__ = ["Exporter", "child_exit", "exporter", "metrics_view", "start", "worker_exit"]

#: The variable that turns on prometheus_client's multiprocess mode (read at its import).
MULTIPROC_DIR = "PROMETHEUS_MULTIPROC_DIR"


class Exporter:
    """prometheus_client metrics that follow one process's ``stats()``.

    Counters only go up, while a backend's counters restart at zero when it is replaced (the
    settings changed) and in a forked child. So each backend seen is followed on its own: a
    sync adds what each one's counters grew by since the last sync, a replaced one included,
    whose last deliveries (while it closes) still count. The exporter never makes a backend
    (``current_backend()``): a sync while the process stops must not start one. It keeps the
    last :data:`KEPT_BACKENDS` it saw, more than a site that changes its settings ever makes.
    """

    KEPT_BACKENDS = 8

    def __init__(self, registry: CollectorRegistry | None = REGISTRY) -> None:
        def counter(name: str, what: str, *labels: str) -> Counter:
            return Counter(f"kameleoon_{name}", what, labels, registry=registry)

        self.counters = {
            "sent": counter("events_sent", "Events the Data API accepted"),
            "retried": counter("events_retried", "Events sent again after a failure, per retry"),
            "requests": counter("requests", "HTTP requests made to the Data API"),
        }
        self.dropped = counter("events_dropped", "Events given up, by reason code", "reason")
        self.queued = Gauge(
            "kameleoon_events_queued",
            "Events waiting to be sent",
            registry=registry,
            multiprocess_mode="livesum",
        )
        self._lock = threading.Lock()
        #: Each backend seen, with its counts at the last sync (insertion order: oldest first).
        self._seen: dict[BaseBackend, dict[str, int]] = {}
        self._pid = os.getpid()

    def sync(self) -> None:
        """Add what this process's counters grew by since the last sync."""
        with self._lock:
            if os.getpid() != self._pid:  # forked: the child's backend counts from zero
                self._pid, self._seen = os.getpid(), {}
            current = current_backend()
            if current is not None and current not in self._seen:
                self._seen[current] = {}
                while len(self._seen) > self.KEPT_BACKENDS:
                    del self._seen[next(iter(self._seen))]
            queued = 0
            for backend, seen in self._seen.items():
                stats = backend.stats()
                queued += stats["queued"]
                for name, metric in self.counters.items():
                    _grow(seen, name, stats[name], metric)
                for reason, count in stats["dropped_by_reason"].items():
                    _grow(seen, f"dropped:{reason}", count, self.dropped.labels(reason=reason))
            self.queued.set(queued)


def _grow(seen: dict[str, int], key: str, value: int, metric: Any) -> None:
    """Add to ``metric`` what ``value`` grew by since ``seen[key]``."""
    grown = value - seen.get(key, 0)
    if grown > 0:
        metric.inc(grown)
    seen[key] = value


#: This process's exporter, its metrics registered in prometheus_client's default registry.
exporter = Exporter()


def metrics_view(request: HttpRequest) -> HttpResponse:
    """``/metrics``: this process's counters synced, then every metric of the registry, or of
    every process in multiprocess mode."""
    exporter.sync()
    registry = REGISTRY
    if os.environ.get(MULTIPROC_DIR):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    return HttpResponse(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)


_interval: float | None = None
_thread: threading.Thread | None = None


def start(interval: float = 15.0) -> None:
    """Sync every ``interval`` seconds in a daemon thread of this process, and of every process
    forked from it (a thread does not survive a fork); once per process."""
    global _interval
    if interval <= 0:
        raise ValueError(f"interval must be a positive number of seconds, not {interval!r}")
    _interval = interval
    _start_thread()


def _start_thread() -> None:
    global _thread
    if _interval is None or (_thread is not None and _thread.is_alive()):
        return
    _thread = threading.Thread(
        target=_sync_every, args=(_interval,), name="kameleoon-prometheus", daemon=True
    )
    _thread.start()


def _sync_every(interval: float) -> None:
    wake = threading.Event()
    while not wake.wait(interval):
        exporter.sync()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_start_thread)


def worker_exit(server: Any, worker: Any) -> None:
    """gunicorn's ``worker_exit`` hook: deliver what the worker holds, then sync its counts."""
    exporter.sync()  # so that the exporter knows the backend deliver_pending() closes
    deliver_pending()
    exporter.sync()


def child_exit(server: Any, worker: Any) -> None:
    """gunicorn's ``child_exit`` hook (in the master): drop the dead worker's live gauges."""
    if os.environ.get(MULTIPROC_DIR):
        multiprocess.mark_process_dead(worker.pid)  # type: ignore[no-untyped-call]
