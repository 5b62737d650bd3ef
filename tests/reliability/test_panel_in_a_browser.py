"""``KameleoonPanel`` rendered by the debug toolbar in a real headless Chromium, served by a
real gunicorn: the toolbar's own JavaScript fetches the panel, which shows the page view the
browser just made, with the visitor code the browser got in its cookie."""

from __future__ import annotations

from pathlib import Path

import pytest

from django_kameleoon.testing import DataApiServer
from tests.support import chromium, gunicorn, serve

pytestmark = pytest.mark.slow

#: The toolbar lives in a shadow root (django-debug-toolbar 6+) or in the document itself.
ROOT = "(document.getElementById('djDebugRoot')?.shadowRoot || document)"
PANEL = f"{ROOT}.querySelector('#KameleoonPanel .djdt-scroll')"


def test_the_toolbar_renders_the_panel(data_api: DataApiServer, tmp_path: Path) -> None:
    env = {
        "DJANGO_SETTINGS_MODULE": "tests.reliability.testsite.extras",
        "KAMELEOON_TEST_TOOLBAR": "1",
    }
    kameleoon = {"DATA_API_URL": data_api.url, "FLUSH_INTERVAL": 0.05}
    argv = gunicorn("-w", "1", "--threads", "4")
    with (
        serve(argv, kameleoon, tmp_path / "gunicorn.log", env=env) as server,
        chromium(tmp_path / "chromium.log", tmp_path / "profile") as browser,
    ):
        tab = browser.tab()
        tab.navigate(server.url + "/plain/?q=shoes&token=s3cret")
        # Its script is an async module: the button works once it has run (djdt is its API).
        tab.wait_for(
            f"typeof globalThis.djdt?.show_toolbar === 'function' && "
            f"!!{ROOT}.querySelector('#djDebug a.KameleoonPanel')",
            "the toolbar, with the panel's button, ready",
        )
        tab.evaluate("djdt.show_toolbar()")
        tab.evaluate(f"{ROOT}.querySelector('#djDebug a.KameleoonPanel').click()")
        tab.wait_for(
            f"({PANEL}?.innerText || '').includes('Events queued')",
            "the panel's content, fetched by the toolbar",
        )
        text = tab.evaluate(f"{PANEL}.innerText")
        shown = tab.evaluate(f"getComputedStyle({ROOT}.querySelector('#KameleoonPanel')).display")
        cookie = tab.evaluate("document.cookie")
    code = dict(part.split("=", 1) for part in cookie.split("; "))["kameleoonVisitorCode"]
    assert shown != "none"
    assert code in text
    assert "counted yes" in " ".join(text.split())
    assert "Event 2: PAGE" in text
    assert "q=shoes" in text and "s3cret" not in text
    events = data_api.wait_for_events(2)
    assert {e["visitorCode"] for e in events} == {code}
