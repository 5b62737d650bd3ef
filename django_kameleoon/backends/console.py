"""Prints each event as one JSON line: for development, to see what a page would send."""

from __future__ import annotations

import sys
import threading
from collections.abc import Sequence
from typing import TextIO

from django_kameleoon.backends.base import BaseBackend
from django_kameleoon.conf import Settings
from django_kameleoon.events import Event

__all__ = ["ConsoleBackend"]


class ConsoleBackend(BaseBackend):
    def __init__(self, settings: Settings, stream: TextIO | None = None) -> None:
        super().__init__(settings)
        self.stream = stream or sys.stdout
        self._lock = threading.Lock()

    def send(self, events: Sequence[Event]) -> None:
        lines = "".join(f"kameleoon: {event.to_json()}\n" for event in events)
        with self._lock:
            self.stream.write(lines)
            self.stream.flush()
            self.counters.sent += len(events)
