"""The interface every backend offers, like Django's ``BaseEmailBackend``, and the counters
that ``stats()`` reports in one shape for every backend."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from django_kameleoon import lifecycle
from django_kameleoon.conf import Settings
from django_kameleoon.events import Event, PendingEvents

__all__ = ["BaseBackend", "Counters"]


@dataclass
class Counters:
    """Running totals of one backend in one process, as ``stats()`` reports them.

    ``sent``: events delivered (or handed to the outbox or console); ``retried``: events sent
    again after a failure, once per retry; ``dropped``: events given up, for any reason;
    ``requests``: HTTP requests made to the Data API; ``dropped_by_reason``: ``dropped`` by
    reason code (``backends.reporting.REASONS``), only the reasons that occurred.
    """

    sent: int = 0
    retried: int = 0
    dropped: int = 0
    requests: int = 0
    dropped_by_reason: dict[str, int] = field(default_factory=dict)

    def report(self, queued: int) -> dict[str, Any]:
        """The ``stats()`` shape: ``queued`` (waiting now), then these totals."""
        return {
            "queued": queued,
            "sent": self.sent,
            "retried": self.retried,
            "dropped": self.dropped,
            "requests": self.requests,
            # A copy: the sender thread may add a reason meanwhile.
            "dropped_by_reason": dict(self.dropped_by_reason),
        }


class BaseBackend:
    """Takes events from the public functions and sees them on their way.

    ``send`` is called on the request path, so a backend that talks to the network must not do
    so in ``send`` unless, like ``SyncBackend``, blocking is the point. Every backend is
    registered with :mod:`django_kameleoon.lifecycle`, which closes it at exit and calls
    ``after_fork()`` in a forked child.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.counters = Counters()
        #: Set by ``close()``: ``get_backend()`` then makes a fresh backend for later events.
        self.closed = False
        lifecycle.register(self)

    def send(self, events: Sequence[Event]) -> None:
        raise NotImplementedError("a backend must define send()")

    def send_later(self, pending: PendingEvents) -> None:
        """Take events that may be made later (a page view's); this default makes them now.

        A backend with a sender thread (``ThreadedBackend``) queues them as they are and makes
        them there, off the request path.
        """
        self.send(pending.build())

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every event sent before the call is delivered or given up, at most
        ``timeout`` seconds (default ``FLUSH_TIMEOUT``); False if some are still pending."""
        return True

    def close(self, timeout: float | None = None, *, reason: str | None = None) -> None:
        """Deliver what is pending within ``timeout`` seconds and release resources.

        What cannot be delivered is reported under ``reason`` (a ``reporting.REASONS`` code),
        by default ``shutdown_timeout``.
        """
        self.closed = True

    def after_fork(self) -> None:
        """In a forked child: start afresh; what was pending belongs to the parent."""
        self.counters = Counters()

    def queued(self) -> int:
        """Events accepted but not yet delivered or given up."""
        return 0

    def stats(self) -> dict[str, Any]:
        """``queued`` (waiting now), ``sent``, ``retried``, ``dropped``, ``requests`` and
        ``dropped_by_reason``."""
        return self.counters.report(self.queued())
