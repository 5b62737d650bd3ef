"""The interface every backend offers, like Django's ``BaseEmailBackend``."""

from __future__ import annotations

from collections.abc import Sequence

from django_kameleoon.conf import Settings
from django_kameleoon.events import Event

__all__ = ["BaseBackend"]


class BaseBackend:
    """Takes events from the public functions and sees them on their way.

    ``send`` is called on the request path, so a backend that talks to the network must not do
    so in ``send`` unless, like ``SyncBackend``, blocking is the point.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def send(self, events: Sequence[Event]) -> None:
        raise NotImplementedError("a backend must define send()")

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every event sent before the call is delivered or given up."""
        return True

    def close(self, timeout: float | None = None) -> None:
        """Deliver what is pending within ``timeout`` seconds and release resources."""
        self.flush(timeout)

    def stats(self) -> dict[str, int]:
        """Counts of events queued (waiting now), sent, retried and dropped."""
        return {"queued": 0, "sent": 0, "retried": 0, "dropped": 0}
