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

from django.core.exceptions import ImproperlyConfigured
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

from django_kameleoon.backends import BaseBackend, get_backend
from django_kameleoon.lifecycle import deliver_pending

__all__ = ["Exporter", "child_exit", "exporter", "metrics_view", "start", "worker_exit"]

#: The variable that turns on prometheus_client's multiprocess mode (read at its import).
MULTIPROC_DIR = "PROMETHEUS_MULTIPROC_DIR"


class Exporter:
    """prometheus_client metrics that follow one process's ``stats()``.

    Counters only go up, and a backend's counters restart at zero when it is replaced (the
    settings changed, it was closed) or the process forked: each sync adds what grew since the
    last one, for the backend it saw then, so no count is lost or counted twice.
    """

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
        self._backend: BaseBackend | None = None
        self._seen: dict[str, int] = {}
        self._pid = os.getpid()

    def sync(self, *, final: bool = False) -> None:
        """Add what this process's counters grew by since the last sync.

        ``final``: the process is stopping; only the backend already seen is read, none made.
        """
        with self._lock:
            if os.getpid() != self._pid:  # forked: the child's backend counts from zero
                self._pid, self._seen = os.getpid(), {}
            seen = self._backend
            if seen is not None and (seen.closed or final):
                self._add(seen.stats())  # its last counts, before it is replaced
            if final:
                self.queued.set(0)
                return
            try:
                current = get_backend()
            except ImproperlyConfigured:
                return  # logged where the site meets it; nothing is counted meanwhile
            if current is not seen:
                self._backend, self._seen = current, {}
            self._add(current.stats())

    def _add(self, stats: dict[str, Any]) -> None:
        for name, metric in self.counters.items():
            self._grow(name, stats[name], metric)
        for reason, count in stats["dropped_by_reason"].items():
            self._grow(f"dropped:{reason}", count, self.dropped.labels(reason=reason))
        self.queued.set(stats["queued"])

    def _grow(self, key: str, value: int, metric: Any) -> None:
        grown = value - self._seen.get(key, 0)
        if grown > 0:
            metric.inc(grown)
        self._seen[key] = value


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
    exporter.sync(final=True)


def child_exit(server: Any, worker: Any) -> None:
    """gunicorn's ``child_exit`` hook (in the master): drop the dead worker's live gauges."""
    if os.environ.get(MULTIPROC_DIR):
        multiprocess.mark_process_dead(worker.pid)  # type: ignore[no-untyped-call]
