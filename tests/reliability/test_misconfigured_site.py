"""A deploy with a configuration mistake, as it ships: gunicorn runs no system checks.

Before, such a site served ``GET /`` but answered the checkout POST with a 500
(``ImproperlyConfigured``), and a typo in ``GOALS`` stopped every worker from booting. Now every
page answers, the mistake is logged once per process, and ``manage.py check`` names it.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import requests

from django_kameleoon.testing import DataApiServer
from tests.support import CHROME, COOKIE, gunicorn, run_python, serve, site_environment

pytestmark = pytest.mark.slow

#: A mistake, whether the site's visitors are still tracked despite it, and its check id.
MISTAKES = [
    pytest.param({"SITE_CODE": ""}, False, "E001", id="no-site-code"),
    pytest.param({"BACKEND": "threadedd"}, False, "E005", id="backend-typo"),
    pytest.param({"BACKEND": "tests.nowhere.Backend"}, False, "E005", id="backend-unimportable"),
    pytest.param({"CONSENT": "tests.consent.nope"}, False, "E021", id="consent-unresolvable"),
    pytest.param(
        {"GOALS": {"tests.signal.order_paid": 12, "tests.signals.order_paid": 3}},
        True,
        "E029",
        id="goals-typo",
    ),
]


def visit(base_url: str) -> None:
    """A shopper's visit: a page, the checkout POST, the thank-you page with its conversion."""
    session = requests.Session()
    session.headers["User-Agent"] = CHROME
    session.cookies.set(COOKIE, "shopper-1")
    assert session.get(base_url + "/page/", timeout=10).status_code == 200
    checkout = session.post(base_url + "/buy/", allow_redirects=False, timeout=10)
    assert checkout.status_code == 302, checkout.text[:2000]
    assert session.get(base_url + "/thanks/", timeout=10).status_code == 200


@pytest.mark.parametrize(("mistake", "tracked", "check_id"), MISTAKES)
def test_gunicorn_serves_a_misconfigured_site_and_logs_the_mistake_once(
    data_api: DataApiServer, tmp_path: Path, mistake: dict[str, Any], tracked: bool, check_id: str
) -> None:
    settings = {"DATA_API_URL": data_api.url, **mistake}
    with serve(gunicorn("-w", "1"), settings, tmp_path / "log") as server:
        for _ in range(3):
            visit(server.url)
        server.stop(timeout=15)
    output = server.output()
    errors = re.findall(r"^\d+ ERROR django_kameleoon: .*$", output, re.M)
    assert len(errors) == 1, output
    assert "Traceback" not in output, output
    kinds = sorted({event["eventType"] for event in data_api.events})
    assert kinds == (["CONVERSION", "PAGE", "STATICDATA"] if tracked else []), kinds


@pytest.mark.parametrize(("mistake", "tracked", "check_id"), MISTAKES)
def test_manage_py_check_names_the_mistake(
    data_api: DataApiServer, mistake: dict[str, Any], tracked: bool, check_id: str
) -> None:
    """``check`` used to die with a traceback over the GOALS typo, and said nothing of CONSENT."""
    env = site_environment({"DATA_API_URL": data_api.url, **mistake})
    result = run_python("-m", "django", "check", env=env)
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"(django_kameleoon.{check_id})" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
