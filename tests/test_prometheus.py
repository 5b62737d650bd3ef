"""``django_kameleoon.contrib.prometheus`` in one process: the metrics follow ``stats()``.

Under gunicorn's workers (multiprocess mode): tests/reliability/test_prometheus.py.
"""

from __future__ import annotations

from typing import Any

import pytest
from prometheus_client import CollectorRegistry, generate_latest

import django_kameleoon
from django_kameleoon.contrib.prometheus import Exporter
from django_kameleoon.testing import DataApiServer
from tests.support import Configure, browser, metric_samples


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


def exported(exporter: Exporter, registry: CollectorRegistry) -> dict[str, float]:
    exporter.sync()
    return metric_samples(generate_latest(registry).decode())


def delivered(n: int) -> None:
    """Track ``n`` events and wait until each is delivered or given up."""
    for index in range(n):
        django_kameleoon.track(f"visitor{index}", "CUSTOMDATA", index=1, valuesCountMap={"a": 1})
    assert django_kameleoon.flush(5)


def test_counters_follow_stats(
    data_api: DataApiServer, kameleoon: Configure, registry: CollectorRegistry
) -> None:
    exporter = Exporter(registry)
    delivered(3)
    data_api.fail(400)
    delivered(2)
    metrics = exported(exporter, registry)
    stats = django_kameleoon.stats()
    assert metrics["kameleoon_events_sent_total"] == stats["sent"] == 3
    assert metrics["kameleoon_events_dropped_total{reason=rejected}"] == 2
    assert metrics["kameleoon_requests_total"] == stats["requests"] == len(data_api.requests)
    assert metrics["kameleoon_events_retried_total"] == 0
    assert metrics["kameleoon_events_queued"] == 0
    assert exported(exporter, registry) == metrics, "a second sync counts nothing twice"


def test_counts_survive_a_replaced_backend(
    data_api: DataApiServer, kameleoon: Configure, registry: CollectorRegistry
) -> None:
    exporter = Exporter(registry)
    delivered(2)
    exporter.sync()
    delivered(1)
    kameleoon(FLUSH_INTERVAL=0.06)  # the backend is closed and replaced, its counters restart
    delivered(1)
    assert exported(exporter, registry)["kameleoon_events_sent_total"] == 4 == len(data_api.events)


def test_the_metrics_view(settings: Any, data_api: DataApiServer, kameleoon: Configure) -> None:
    settings.ROOT_URLCONF = "tests.urls_extras"
    browser().get("/plain/")
    assert django_kameleoon.flush(5)
    response = browser().get("/metrics")
    assert response["Content-Type"].startswith("text/plain")
    metrics = metric_samples(response.content.decode())
    # The module's exporter has counted since the suite imported it: compare with stats().
    assert metrics["kameleoon_events_sent_total"] >= django_kameleoon.stats()["sent"] == 2


def test_start_refuses_a_bad_interval() -> None:
    from django_kameleoon.contrib.prometheus import start

    with pytest.raises(ValueError, match="positive"):
        start(0)
