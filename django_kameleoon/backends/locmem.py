"""Keeps events in ``django_kameleoon.outbox``, like ``mail.outbox``: for a site's own tests."""

from __future__ import annotations

from collections.abc import Sequence

import django_kameleoon
from django_kameleoon.backends.base import BaseBackend
from django_kameleoon.events import Event

__all__ = ["LocmemBackend"]


class LocmemBackend(BaseBackend):
    def send(self, events: Sequence[Event]) -> None:
        django_kameleoon.outbox.extend(events)
        self.counters.sent += len(events)
