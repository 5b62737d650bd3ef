"""Sends inline, retries included: for scripts and management commands, never for web requests."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict

from django_kameleoon.backends.base import BaseBackend
from django_kameleoon.backends.delivery import Delivery
from django_kameleoon.conf import Settings
from django_kameleoon.events import Event

__all__ = ["SyncBackend"]


class SyncBackend(BaseBackend):
    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self.delivery = Delivery(settings)

    def send(self, events: Sequence[Event]) -> None:
        self.delivery.deliver(events)

    def close(self, timeout: float | None = None) -> None:
        self.delivery.close()

    def stats(self) -> dict[str, int]:
        counts = asdict(self.delivery.counters)
        return {"queued": 0, **{k: counts[k] for k in ("sent", "retried", "dropped")}}
