"""Sends inline, retries included: for scripts and management commands, never for web requests."""

from __future__ import annotations

from collections.abc import Sequence

from django_kameleoon.backends.base import BaseBackend
from django_kameleoon.backends.delivery import Delivery
from django_kameleoon.conf import Settings
from django_kameleoon.events import Event

__all__ = ["SyncBackend"]


class SyncBackend(BaseBackend):
    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self.delivery = Delivery(settings, self.counters)

    def send(self, events: Sequence[Event]) -> None:
        self.delivery.deliver(events)

    def close(self, timeout: float | None = None) -> None:
        self.delivery.close()
        super().close(timeout)

    def after_fork(self) -> None:
        """A requests session must not be shared with the parent: start a new one."""
        super().after_fork()
        self.delivery = Delivery(self.settings, self.counters)
