"""Processes that exit without calling flush(): what they queued is delivered, promptly."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

from django_kameleoon.testing import DataApiServer

ROOT = Path(__file__).resolve().parent.parent

PRELUDE = """
import json, sys
import django
from django.conf import settings
settings.configure(INSTALLED_APPS=["django_kameleoon"], KAMELEOON=json.loads(sys.argv[1]))
django.setup()
import django_kameleoon
"""


def run_script(
    body: str, kameleoon: dict[str, Any]
) -> tuple[subprocess.CompletedProcess[str], float]:
    """Run ``body`` in a fresh interpreter with Django set up; return it and its wall time."""
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-c", PRELUDE + textwrap.dedent(body), json.dumps(kameleoon)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    return result, time.monotonic() - started


def test_a_script_that_exits_without_flush_delivers_everything(data_api: DataApiServer) -> None:
    result, elapsed = run_script(
        """
        for i in range(200):
            django_kameleoon.track_conversion(f"v{i}", 3, revenue=1.0)
        """,
        {"SITE_CODE": "testsite01", "DATA_API_URL": data_api.url},
    )
    assert result.returncode == 0, result.stderr
    assert sorted(e["visitorCode"] for e in data_api.events) == sorted(f"v{i}" for i in range(200))
    assert elapsed < 5, f"the script took {elapsed:.1f} s to exit"


def test_exit_with_the_api_down_gives_up_within_the_shutdown_timeout(
    data_api: DataApiServer,
) -> None:
    data_api.stop()
    result, elapsed = run_script(
        """
        for i in range(1000):
            django_kameleoon.track_conversion(f"v{i}", 3)
        """,
        {"SITE_CODE": "testsite01", "DATA_API_URL": data_api.url, "SHUTDOWN_TIMEOUT": 2.0},
    )
    assert result.returncode == 0, result.stderr
    assert "1000 event(s) could not be delivered" in result.stderr
    assert elapsed < 2.0 + 1.0 + 1.5, f"exit took {elapsed:.1f} s"  # + start-up of Python/Django
