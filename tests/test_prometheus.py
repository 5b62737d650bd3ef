"""``django_kameleoon.contrib.prometheus`` in one process: the metrics follow ``stats()``.

Under gunicorn's workers (multiprocess mode): tests/reliability/test_prometheus.py.
"""

from __future__ import annotations

from typing import Any

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

import django_kameleoon
from django_kameleoon.contrib.prometheus import Exporter
from django_kameleoon.testing import DataApiServer
from tests.support import Configure, browser


def samples(text: str) -> dict[str, float]:
    """``{"name{label=value}": value}`` of an exposition, without the ``_created`` samples."""
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name.endswith("_created"):
                continue
            labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
            found[sample.name + (f"{{{labels}}}" if labels else "")] = sample.value
    return found


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


def exported(exporter: Exporter, registry: CollectorRegistry) -> dict[str, float]:
    exporter.sync()
    return samples(generate_latest(registry).decode())


def track(n: int = 1) -> None:
    for index in range(n):
        django_kameleoon.track(f"visitor{index}", "CUSTOMDATA", index=1, valuesCountMap={"a": 1})


def test_counters_follow_stats(
    data_api: DataApiServer, kameleoon: Configure, registry: CollectorRegistry
) -> None:
    exporter = Exporter(registry)
    track(3)
    assert django_kameleoon.flush(5)
    data_api.fail(400)
    track(2)
    assert django_kameleoon.flush(5)
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
    track(2)
    assert django_kameleoon.flush(5)
    exporter.sync()
    track(1)
    assert django_kameleoon.flush(5)
    kameleoon(FLUSH_INTERVAL=0.06)  # the backend is closed and replaced, its counters restart
    track(1)
    assert django_kameleoon.flush(5)
    assert exported(exporter, registry)["kameleoon_events_sent_total"] == 4 == len(data_api.events)


def test_the_metrics_view(settings: Any, data_api: DataApiServer, kameleoon: Configure) -> None:
    settings.ROOT_URLCONF = "tests.urls_extras"
    browser().get("/plain/")
    assert django_kameleoon.flush(5)
    response = browser().get("/metrics")
    assert response["Content-Type"].startswith("text/plain")
    metrics = samples(response.content.decode())
    # The module's exporter has counted since the suite imported it: compare with stats().
    assert metrics["kameleoon_events_sent_total"] >= django_kameleoon.stats()["sent"] == 2


def test_start_refuses_a_bad_interval() -> None:
    from django_kameleoon.contrib.prometheus import start

    with pytest.raises(ValueError, match="positive"):
        start(0)
