"""Making loss and outages visible: counted, logged and signalled in one format, off the
request path.

Every event given up is reported under one of a few stable reason codes (:data:`REASONS`),
the same in ``stats()["dropped_by_reason"]``, in the ``events_dropped`` signal's ``reason`` and
in the log. Monitoring (a Prometheus exporter, a debug panel, a script counting loss) relies on
these names: add one only for a cause none of them covers, and never rename one.

Every drop is logged in one grep-able format, with the process id, so a script can add up the
loss of every worker from a server's log::

    django-kameleoon[<pid>]: <N> event(s) dropped (<reason>): <detail>

Summing ``<N>`` over these lines gives ``stats()["dropped"]`` of each process once it has
reported (a full queue is logged at most once a minute, with the count since its last line;
whatever is left is logged when the backend closes). Drops are logged at WARNING, a
configuration mistake (``redirect``) at ERROR. The start and the end of an outage are logged at
WARNING too, and a summary when the backend closes.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Sequence

from django_kameleoon.backends.base import Counters
from django_kameleoon.events import Event
from django_kameleoon.signals import events_dropped

__all__ = [
    "CLOSED",
    "ERROR",
    "FLUSH_TIMEOUT",
    "OVERSIZE",
    "QUEUE_FULL",
    "REASONS",
    "REDIRECT",
    "REJECTED",
    "SERVER_ERROR",
    "SHUTDOWN_TIMEOUT",
    "Reporter",
    "prefix",
]

logger = logging.getLogger("django_kameleoon")

#: The queue held ``MAX_QUEUE_SIZE`` events (the API down or slower than the site's traffic).
QUEUE_FULL = "queue_full"
#: Still undelivered when the ``SHUTDOWN_TIMEOUT`` of a stopping process ran out.
SHUTDOWN_TIMEOUT = "shutdown_timeout"
#: Not delivered within ``FLUSH_TIMEOUT`` by the ``sync`` backend, which must not block forever.
FLUSH_TIMEOUT = "flush_timeout"
#: Refused by the API with a 4xx answer (400, 401, 403, ...): retrying cannot help.
REJECTED = "rejected"
#: ``MAX_RETRIES`` retries failed (500 and the like, 408, 425, or no answer in time).
SERVER_ERROR = "server_error"
#: One event too large for the API's 3 MB body (before sending, or a 413 for it alone).
OVERSIZE = "oversize"
#: The API answered with a redirect, which is never followed: ``DATA_API_URL`` is wrong.
REDIRECT = "redirect"
#: The backend was closed and replaced (the settings changed) before it could deliver them.
CLOSED = "closed"
#: An unexpected error in the sender thread (a bug: please report it).
ERROR = "error"

#: Every reason code, in the order of the README's table.
REASONS = (
    QUEUE_FULL,
    SHUTDOWN_TIMEOUT,
    FLUSH_TIMEOUT,
    REJECTED,
    SERVER_ERROR,
    OVERSIZE,
    REDIRECT,
    CLOSED,
    ERROR,
)

#: How often a full queue is logged, so that an outage does not flood the log.
OVERFLOW_LOG_INTERVAL = 60.0


def prefix() -> str:
    """The start of every delivery log line: which process speaks, among a server's workers."""
    return f"django-kameleoon[{os.getpid()}]:"


class Reporter:
    """Counts, logs and signals what one backend gave up, and the outages it waited out.

    Called from the sender thread (or the sync backend's caller), never from the request path,
    which only counts a full queue (the threaded backend hands that count over here).
    """

    def __init__(self, counters: Counters, sender: type) -> None:
        self.counters = counters
        self.sender = sender
        self._lock = threading.Lock()
        self._unlogged_overflow = 0
        self._overflow_logged_at = -OVERFLOW_LOG_INTERVAL
        self._outage_since: float | None = None

    def dropped(
        self,
        reason: str,
        events: Sequence[Event],
        detail: str,
        *,
        count: int | None = None,
        level: int = logging.WARNING,
        counted: bool = False,
    ) -> None:
        """Count (unless already ``counted``), log and signal ``count`` events given up:
        ``events``, or none of them for a full queue (the request path keeps nothing)."""
        count = len(events) if count is None else count
        if count <= 0:
            return
        if not counted:
            self.count(reason, count)
        if reason == QUEUE_FULL:
            self._log_overflow(count, detail)
        else:
            log_drop(count, reason, detail, level)
        # send_robust: a site's receiver that raises is logged by Django, and must not stop us.
        events_dropped.send_robust(
            sender=self.sender, events=list(events), reason=reason, count=count
        )

    def count(self, reason: str, count: int) -> None:
        if count <= 0:
            return
        with self._lock:
            self.counters.dropped += count
            by_reason = self.counters.dropped_by_reason
            by_reason[reason] = by_reason.get(reason, 0) + count

    def _log_overflow(self, count: int, detail: str, *, force: bool = False) -> None:
        self._unlogged_overflow += count
        now = time.monotonic()
        if self._unlogged_overflow and (
            force or now - self._overflow_logged_at >= OVERFLOW_LOG_INTERVAL
        ):
            total = self.counters.dropped_by_reason.get(QUEUE_FULL, 0)
            log_drop(self._unlogged_overflow, QUEUE_FULL, f"{detail}; {total} in all")
            self._unlogged_overflow = 0
            self._overflow_logged_at = now

    def outage(self, what: str, waiting: int) -> None:
        """The API is unreachable or unavailable: said once, when it starts."""
        if self._outage_since is not None:
            return
        self._outage_since = time.monotonic()
        logger.warning(
            "%s the Data API is unreachable (%s); %d event(s) waiting, retrying until it is back",
            prefix(),
            what,
            waiting,
        )

    def recovered(self, waiting: int) -> None:
        """A request succeeded: if an outage was on, say it ended, how long it lasted."""
        if self._outage_since is None:
            return
        lasted = time.monotonic() - self._outage_since
        self._outage_since = None
        logger.warning(
            "%s the Data API is reachable again after %.1f s; %d event(s) waiting",
            prefix(),
            lasted,
            waiting,
        )

    def summary(self, queue_size: int) -> None:
        """At close: the full queue's last count, then this backend's totals in one line."""
        self._log_overflow(0, f"MAX_QUEUE_SIZE={queue_size} reached", force=True)
        counters = self.counters
        if not (counters.sent or counters.dropped):
            return
        reasons = ", ".join(f"{n} {r}" for r, n in sorted(counters.dropped_by_reason.items()))
        logger.log(
            logging.WARNING if counters.dropped else logging.INFO,
            "%s totals: %d event(s) sent, %d dropped%s, %d retried, %d request(s)",
            prefix(),
            counters.sent,
            counters.dropped,
            f" ({reasons})" if reasons else "",
            counters.retried,
            counters.requests,
        )


def log_drop(count: int, reason: str, detail: str, level: int = logging.WARNING) -> None:
    """The one format of a drop's log line (see the module docstring)."""
    logger.log(level, "%s %d event(s) dropped (%s): %s", prefix(), count, reason, detail)
