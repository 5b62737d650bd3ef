"""Async views under a real uvicorn, with a ``CONSENT`` callable that queries the database.

Before, ``track_conversion()`` in an async view raised ``SynchronousOnlyOperation`` there (a 500
for the checkout). The site uses a SQLite file (``KAMELEOON_TEST_DATABASE``), migrated and given
two accounts before uvicorn starts: alice consented, bob did not.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import requests

from django_kameleoon.testing import DataApiServer
from tests.support import CHROME, COOKIE, run_python, serve, site_environment, uvicorn

pytestmark = pytest.mark.slow

ACCOUNTS = """
from django.contrib.auth.models import User
User.objects.create(username="alice")
User.objects.create(username="bob", is_active=False)
"""


def database_with_accounts(path: Path, data_api: DataApiServer) -> dict[str, str]:
    """Migrate a SQLite file for the test site and add the accounts; the site's extra env."""
    env = {"KAMELEOON_TEST_DATABASE": str(path)}
    site = {**site_environment({"DATA_API_URL": data_api.url}), **env}
    for command in (["migrate", "--noinput"], ["shell", "-c", ACCOUNTS]):
        result = run_python("-m", "django", *command, env=site)
        assert result.returncode == 0, result.stdout + result.stderr
    return env


def checkout(base_url: str, path: str, account: str) -> None:
    headers = {"Cookie": f"{COOKIE}=visitor-{account}; account={account}", "User-Agent": CHROME}
    response = requests.post(base_url + path, headers=headers, allow_redirects=False, timeout=10)
    assert response.status_code == 302, response.text[:2000]


def test_uvicorn_async_views_ask_a_database_consent(
    data_api: DataApiServer, tmp_path: Path
) -> None:
    env = database_with_accounts(tmp_path / "site.sqlite3", data_api)
    settings = {"DATA_API_URL": data_api.url, "CONSENT": "tests.consent.by_account"}
    with serve(uvicorn(), settings, tmp_path / "log", env=env) as server:
        for path in ("/async/buy/", "/async/abuy/"):
            for account in ("alice", "bob"):
                checkout(server.url, path, account)
        server.stop(timeout=15)
    assert "ERROR" not in server.output(), server.output()
    received = sorted((e["visitorCode"], e["eventType"], e.get("goalId")) for e in data_api.events)
    assert received == [
        ("visitor-alice", "CONVERSION", 43),
        ("visitor-alice", "CONVERSION", 44),
        ("visitor-alice", "CUSTOMDATA", None),
    ]
