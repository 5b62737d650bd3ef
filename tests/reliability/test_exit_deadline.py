"""No hang at exit: a process with 1,000 events queued and the Data API down or hanging exits
within SHUTDOWN_TIMEOUT plus a second of its last line, and says how many events it lost.

The exit itself is timed (from the script's last line to the process's end, so a slow start-up
of Python and Django is not counted), for both kinds of outage: a refused connection fails fast,
a hanging one must be cut short by the deadline.
"""

from __future__ import annotations

import time

import pytest

from django_kameleoon.testing import DataApiServer
from tests.support import SITE_CODE, run_script

pytestmark = pytest.mark.slow

SHUTDOWN_TIMEOUT = 2.0


@pytest.mark.parametrize("outage", ["refused", "hanging"])
def test_exit_with_1000_events_and_the_api_down(data_api: DataApiServer, outage: str) -> None:
    if outage == "refused":
        data_api.stop()
    else:
        data_api.delay(60, times=100)  # connections accepted, never answered
    result, _ = run_script(
        """
        import time
        for i in range(1000):
            django_kameleoon.track_conversion(f"v{i}", 3)
        print(time.time(), flush=True)  # the last line: from here on, the process is exiting
        """,
        {
            "SITE_CODE": SITE_CODE,
            "DATA_API_URL": data_api.url,
            "SHUTDOWN_TIMEOUT": SHUTDOWN_TIMEOUT,
            "TIMEOUT": 30.0,
        },
    )
    exited = time.time()
    assert result.returncode == 0, result.stderr
    exiting = exited - float(result.stdout.strip().splitlines()[-1])
    assert exiting < SHUTDOWN_TIMEOUT + 1.0, f"exit took {exiting:.2f} s"
    assert "1000 event(s) dropped (shutdown_timeout)" in result.stderr
    if outage == "hanging":
        assert exiting > SHUTDOWN_TIMEOUT - 0.5, "it did try to deliver until the deadline"
    data_api.reset()  # a hanging request may be recorded, unanswered, when the server stops


@pytest.mark.parametrize("fault", ["503", "429", "reset"])
def test_a_passing_fault_at_exit_is_retried_within_the_shutdown_timeout(
    data_api: DataApiServer, fault: str
) -> None:
    """The first delivery attempt is at exit (FLUSH_INTERVAL is long) and it fails: the sender
    retries within SHUTDOWN_TIMEOUT instead of giving the queue up at the first error."""
    if fault == "503":
        data_api.fail(503, times=2)
    elif fault == "429":
        data_api.fail(429, headers={"Retry-After": "1"})
    else:
        data_api.drop(times=2)
    result, _ = run_script(
        """
        for i in range(200):
            django_kameleoon.track_conversion(f"v{i}", 3)
        """,
        {"SITE_CODE": SITE_CODE, "DATA_API_URL": data_api.url, "FLUSH_INTERVAL": 60.0},
    )
    assert result.returncode == 0, result.stderr
    assert "event(s) dropped" not in result.stderr, result.stderr
    assert sorted(e["visitorCode"] for e in data_api.events) == sorted(f"v{i}" for i in range(200))
    assert [r.fault for r in data_api.requests][-1] is None
