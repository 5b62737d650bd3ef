"""The interface every backend offers, like Django's ``BaseEmailBackend``, and the counters
that ``stats()`` reports in one shape for every backend."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

from django_kameleoon import lifecycle
from django_kameleoon.conf import Settings
from django_kameleoon.events import Event

__all__ = ["BaseBackend", "Counters"]


@dataclass
class Counters:
    """Running totals of one backend in one process, as ``stats()`` reports them.

    ``sent``: events delivered (or handed to the outbox or console); ``retried``: events sent
    again after a failure, once per retry; ``dropped``: events given up, for any reason;
    ``requests``: HTTP requests made to the Data API.
    """

    sent: int = 0
    retried: int = 0
    dropped: int = 0
    requests: int = 0

    def report(self, queued: int) -> dict[str, int]:
        """The ``stats()`` shape: ``queued`` (waiting now), then these totals."""
        return {"queued": queued, **asdict(self)}


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

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every event sent before the call is delivered or given up."""
        return True

    def close(self, timeout: float | None = None) -> None:
        """Deliver what is pending within ``timeout`` seconds and release resources."""
        self.closed = True

    def after_fork(self) -> None:
        """In a forked child: start afresh; what was pending belongs to the parent."""
        self.counters = Counters()

    def queued(self) -> int:
        """Events accepted but not yet delivered or given up."""
        return 0

    def stats(self) -> dict[str, int]:
        """``queued`` (waiting now), ``sent``, ``retried``, ``dropped`` and ``requests``."""
        return self.counters.report(self.queued())
