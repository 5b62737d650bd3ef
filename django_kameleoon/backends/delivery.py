"""Getting a list of events to the Data API: batching by count and bytes, retries with backoff,
splitting on 413, and reporting what was delivered or given up.

Shared by the sync and threaded backends; it never decides *when* to send, only *how*.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Sequence

from django_kameleoon.backends.base import Counters
from django_kameleoon.backends.client import Answer, DataApiClient, Outcome
from django_kameleoon.conf import Settings
from django_kameleoon.events import MAX_BODY_BYTES, Event
from django_kameleoon.signals import events_delivered, events_dropped

__all__ = ["Delivery"]

logger = logging.getLogger("django_kameleoon")

#: Waits between attempts (``time.sleep``, or the threaded backend's wait that a shutdown
#: cuts short).
Wait = Callable[[float], None]

#: When to give up: a ``time.monotonic()`` value, or a function giving one (or None for never),
#: asked again before each attempt, so that a shutdown that begins mid-delivery sets a deadline
#: for the batch already on its way.
Deadline = float | Callable[[], float | None] | None


def _resolve(deadline: Deadline) -> float | None:
    return deadline() if callable(deadline) else deadline


class Delivery:
    """Delivers events in as few requests as the limits allow, retrying what may succeed later."""

    def __init__(self, settings: Settings, counters: Counters) -> None:
        self.settings = settings
        self.client = DataApiClient(settings)
        self.counters = counters
        self.max_events = settings.MAX_BATCH_EVENTS
        self.max_bytes = min(settings.MAX_BATCH_BYTES, MAX_BODY_BYTES)

    def deliver(
        self, events: Sequence[Event], *, deadline: Deadline = None, wait: Wait = time.sleep
    ) -> list[Event]:
        """Send ``events``; return those left undelivered because ``deadline`` came first."""
        left: list[Event] = []
        for batch, encoded in self._batches(events):
            until = _resolve(deadline)
            if left or (until is not None and time.monotonic() >= until):
                left.extend(batch)
                continue
            left.extend(self._send(batch, encoded, deadline, wait))
        return left

    def drop(self, events: Sequence[Event], reason: str) -> None:
        """Give events up: count them, log why (without visitor data), and tell receivers."""
        if not events:
            return
        self.counters.dropped += len(events)
        logger.warning("Kameleoon: %d event(s) dropped: %s", len(events), reason)
        # send_robust: a site's receiver that raises is logged by Django, and must not stop us.
        events_dropped.send_robust(sender=type(self), events=list(events), reason=reason)

    def close(self) -> None:
        self.client.close()

    def _batches(self, events: Sequence[Event]) -> list[tuple[list[Event], list[bytes]]]:
        """Group events into bodies within ``MAX_BATCH_EVENTS`` and ``MAX_BATCH_BYTES``."""
        batches: list[tuple[list[Event], list[bytes]]] = []
        batch: list[Event] = []
        encoded: list[bytes] = []
        size = 0
        for event in events:
            data = self.client.encode(event)
            if self.client.body_size(len(data), 1) > MAX_BODY_BYTES:
                self.drop([event], f"{event.event_type} event over the API's 3 MB body limit")
                continue
            if batch and (
                len(batch) >= self.max_events
                or self.client.body_size(size + len(data), len(batch) + 1) > self.max_bytes
            ):
                batches.append((batch, encoded))
                batch, encoded, size = [], [], 0
            batch.append(event)
            encoded.append(data)
            size += len(data)
        if batch:
            batches.append((batch, encoded))
        return batches

    def _send(
        self, batch: list[Event], encoded: list[bytes], deadline: Deadline, wait: Wait
    ) -> list[Event]:
        """One body, retried until delivered, refused, out of retries, or out of time.

        An outage (no connection, no answer in time, 429, 502, 503, 504) is waited out for as
        long as it lasts, with backoff: the events could still be delivered, and the queue's
        bound already limits what waits meanwhile. ``MAX_RETRIES`` counts the other failures
        (a 500, say), which may be this batch's own doing and must not block the queue.
        """
        failures = attempts = 0
        while True:
            until = _resolve(deadline)
            remaining = None if until is None else until - time.monotonic()
            if remaining is not None and remaining <= 0:
                return batch
            answer = self._post(encoded, remaining)
            self.counters.requests += 1
            if answer.outcome is Outcome.DELIVERED:
                self.counters.sent += len(batch)
                events_delivered.send_robust(sender=type(self), events=batch)
                return []
            if answer.outcome is Outcome.TOO_LARGE:
                return self._split(batch, encoded, deadline, wait)
            if answer.outcome is Outcome.DROP:
                self.drop(batch, f"the Data API refused them ({answer.reason})")
                return []
            failures += 1
            attempts += 0 if answer.outage else 1
            if attempts > self.settings.MAX_RETRIES:
                self.drop(batch, f"no success after {failures} attempts (last: {answer.reason})")
                return []
            delay = self._backoff(failures, answer)
            until = _resolve(deadline)
            if until is not None and time.monotonic() + delay >= until:
                return batch
            logger.info("Kameleoon: %s; retry %d in %.1f s", answer.reason, failures, delay)
            self.counters.retried += len(batch)
            wait(delay)

    def _post(self, encoded: list[bytes], timeout: float | None) -> Answer:
        """``client.post``, with any unexpected error (a bug below us) made a retryable failure.

        Retrying bounds the damage of a one-off error to a delay, and of a lasting one to
        ``MAX_RETRIES`` attempts, after which the batch is dropped and reported as usual.
        """
        try:
            return self.client.post(encoded, timeout=timeout)
        except Exception as exc:
            logger.error("Kameleoon: unexpected %s while sending events", type(exc).__name__)
            logger.debug("Kameleoon: sending error", exc_info=True)
            return Answer(Outcome.RETRY, f"unexpected {type(exc).__name__}")

    def _split(
        self, batch: list[Event], encoded: list[bytes], deadline: Deadline, wait: Wait
    ) -> list[Event]:
        if len(batch) == 1:
            self.drop(batch, "the Data API found the event too large (HTTP 413)")
            return []
        half = len(batch) // 2
        left = self._send(batch[:half], encoded[:half], deadline, wait)
        return left + self._send(batch[half:], encoded[half:], deadline, wait)

    def _backoff(self, attempt: int, answer: Answer) -> float:
        """Retry-After when the API gave one, else jittered exponential backoff; both capped."""
        cap = self.settings.RETRY_BACKOFF_MAX
        if answer.retry_after is not None:
            return min(answer.retry_after, cap)
        delay = min(cap, self.settings.RETRY_BACKOFF * 2.0 ** (attempt - 1))
        return delay * random.uniform(0.5, 1.0)
