"""The README's Prometheus recipe under real gunicorn workers, in prometheus_client's
multiprocess mode: ``/metrics``, whichever worker answers it, reports the counters of every
worker, those recycled by ``--max-requests`` included, and they match what the Data API got.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import requests

from django_kameleoon.testing import DataApiServer
from tests.support import (
    assert_each_view_arrived_once,
    burst,
    gunicorn,
    metric_samples,
    serve,
    wait_until,
)

pytestmark = pytest.mark.slow

CONFIG = str(Path(__file__).parent / "testsite" / "gunicorn_prometheus.py")


def scrape(url: str) -> dict[str, float]:
    return metric_samples(requests.get(url + "/metrics", timeout=10).text)


def test_counters_sum_across_gunicorn_workers(data_api: DataApiServer, tmp_path: Path) -> None:
    multiproc = tmp_path / "prometheus"
    multiproc.mkdir()
    argv = gunicorn("-w", "2", "--max-requests", "8", "-c", CONFIG, app="wsgi_prometheus")
    env = {
        "DJANGO_SETTINGS_MODULE": "tests.reliability.testsite.extras",
        "PROMETHEUS_MULTIPROC_DIR": str(multiproc),
    }
    kameleoon = {"DATA_API_URL": data_api.url, "FLUSH_INTERVAL": 0.05}
    with serve(argv, kameleoon, tmp_path / "gunicorn.log", env=env) as server:
        views = burst(server.url, ["/plain/"], count=40)
        assert_each_view_arrived_once(data_api, views)
        expected = {
            "kameleoon_events_sent_total": 80.0,
            "kameleoon_events_retried_total": 0.0,
            "kameleoon_requests_total": float(len(data_api.requests)),
        }
        last: dict[str, float] = {}

        def matches() -> bool:
            nonlocal last
            last = scrape(server.url)
            return all(last.get(name) == value for name, value in expected.items())

        wait_until(
            matches,
            "/metrics to sum every worker's counters",
            30,
            interval=0.2,
            details=lambda: f"{last} (expected {expected})",
        )
        assert "kameleoon_events_queued" in last
        # 40 page views and the scrapes over workers recycled every 8 requests: at least five
        # processes counted, each in its own file, most of them gone.
        counter_files = list(multiproc.glob("counter_*.db"))
        assert len(counter_files) >= 5, counter_files
