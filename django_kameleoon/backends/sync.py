"""Sends inline, retries included: for scripts and management commands, never for web requests.

Each ``send`` gives up after ``FLUSH_TIMEOUT`` seconds, so a cron job or a management command
cannot hang while the API is unreachable: what is left is dropped as ``flush_timeout``.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from django_kameleoon.backends.base import BaseBackend
from django_kameleoon.backends.delivery import Delivery
from django_kameleoon.backends.reporting import FLUSH_TIMEOUT
from django_kameleoon.conf import Settings
from django_kameleoon.events import Event

__all__ = ["SyncBackend"]


class SyncBackend(BaseBackend):
    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self.delivery = Delivery(settings, self.counters)

    def send(self, events: Sequence[Event]) -> None:
        limit = self.settings.FLUSH_TIMEOUT
        left = self.delivery.deliver(events, deadline=time.monotonic() + limit)
        self.delivery.drop(left, FLUSH_TIMEOUT, f"not delivered within FLUSH_TIMEOUT ({limit:g} s)")

    def close(self, timeout: float | None = None, *, reason: str | None = None) -> None:
        self.delivery.reporter.summary(0)
        self.delivery.close()
        super().close(timeout, reason=reason)

    def after_fork(self) -> None:
        """A requests session must not be shared with the parent: start a new one."""
        super().after_fork()
        self.delivery = Delivery(self.settings, self.counters)
