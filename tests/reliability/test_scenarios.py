"""Every scenario of ``benchmarks/scenarios.py`` (the README's table), at a small scale, held to
its expectation: the graceful cases lose and duplicate nothing, a SIGKILL loses at most
``FLUSH_INTERVAL``'s worth, a loss is reported exactly, a configuration mistake serves every
page. A delivery regression turns a row, and so its test, red.

The counts come from what the load client did and what the local Data API accepted, never from
the code under test (see the script's docstring).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.scenarios import SCENARIOS, SMALL, Scenario, slug, table
from django_kameleoon.testing import DataApiServer

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("scenario", [pytest.param(s, id=slug(s.name)) for s in SCENARIOS])
def test_scenario_meets_its_expectation(
    data_api: DataApiServer, tmp_path: Path, scenario: Scenario
) -> None:
    if "gevent" in scenario.name:
        pytest.importorskip("gevent")
    row = scenario.run(data_api, tmp_path, SMALL)
    assert row.ok, "\n" + table([row], SMALL, markdown=False)
