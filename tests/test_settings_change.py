"""Changing ``KAMELEOON`` (``override_settings``) replaces the backend (issue 10, item 13): the
old one first delivers its queue, briefly, and what it cannot deliver is reported as what it
is: dropped because the settings changed (``closed``), not a shutdown deadline.
"""

from __future__ import annotations

import logging
from typing import Any

import pytest
from django.test import override_settings

import django_kameleoon
from django_kameleoon.testing import DataApiServer
from tests.support import SITE_CODE, Configure

OTHER = {"SITE_CODE": SITE_CODE, "BACKEND": "locmem"}


def test_a_settings_change_delivers_the_old_queue_first(
    kameleoon: Configure,
    data_api: DataApiServer,
    dropped: list[dict[str, Any]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    kameleoon(FLUSH_INTERVAL=60.0)  # nothing would be sent before the change
    caplog.set_level(logging.WARNING, logger="django_kameleoon")
    for i in range(20):
        django_kameleoon.track_conversion(f"v{i}", 5)
    with override_settings(KAMELEOON=OTHER):
        assert len(data_api.events) == 20
    assert dropped == []
    assert "dropped" not in caplog.text


def test_what_a_settings_change_cannot_deliver_is_reported_as_closed(
    kameleoon: Configure,
    data_api: DataApiServer,
    dropped: list[dict[str, Any]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    kameleoon(SHUTDOWN_TIMEOUT=0.3)
    caplog.set_level(logging.WARNING, logger="django_kameleoon")
    data_api.stop()
    for i in range(20):
        django_kameleoon.track_conversion(f"v{i}", 5)
    with override_settings(KAMELEOON=OTHER):
        pass
    assert dropped == [{"count": 20, "reason": "closed"}]
    (line,) = [r.getMessage() for r in caplog.records if "event(s) dropped" in r.getMessage()]
    assert "20 event(s) dropped (closed): the settings changed" in line, line
    assert "SHUTDOWN_TIMEOUT" not in line
