"""Getting a list of events to the Data API: batching by count and bytes, retries with backoff,
splitting on 413, and reporting what was delivered or given up.

Shared by the sync and threaded backends; it never decides *when* to send, only *how*.
:meth:`Delivery.attempt` is one try of one batch and says what to do next (delivered, retry
after so many seconds, dropped with a reason code, split): a backend that schedules its own
retries (a task queue) can call it alone, carrying a :class:`Tries` between attempts.
"""

from __future__ import annotations

import logging
import os
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from django_kameleoon.backends.base import Counters
from django_kameleoon.backends.client import Answer, DataApiClient, Outcome
from django_kameleoon.backends.reporting import (
    OVERSIZE,
    REDIRECT,
    SERVER_ERROR,
    Reporter,
    prefix,
)
from django_kameleoon.conf import Settings
from django_kameleoon.events import MAX_BODY_BYTES, Event
from django_kameleoon.signals import events_delivered

__all__ = ["EVENTS_PER_PIECE", "Delivery", "Result", "Tries", "let_requests_run"]

logger = logging.getLogger("django_kameleoon")

#: Waits between attempts (``time.sleep``, or the threaded backend's wait that a shutdown
#: cuts short).
Wait = Callable[[float], None]

#: Events the sender works through between two moments it lets go of the interpreter: about
#: 0.1 ms of encoding.
EVENTS_PER_PIECE = 50


def let_requests_run() -> None:
    """Let a thread that waits for the GIL (a request's) take it now.

    A thread that wants the GIL waits for the switch interval (5 ms) before the interpreter
    makes the running one let go, and the sender's Python work on a full batch (encoding it,
    letting go of it) takes a few milliseconds: without this, a request that arrives meanwhile
    waits for most of it, which is a page's p99. Yielding releases the GIL at once, for about
    a microsecond (``os.sched_yield``; ``time.sleep(0)``, which on Python 3.10 gives the GIL
    back to the sender itself, where the OS has no ``sched_yield``).
    """
    _yield()


_yield: Callable[[], object] = getattr(os, "sched_yield", None) or (lambda: time.sleep(0))

#: When to give up: a ``time.monotonic()`` value, or a function giving one (or None for never),
#: asked again before each attempt, so that a shutdown that begins mid-delivery sets a deadline
#: for the batch already on its way.
Deadline = float | Callable[[], float | None] | None


def _resolve(deadline: Deadline) -> float | None:
    return deadline() if callable(deadline) else deadline


@dataclass
class Tries:
    """What the attempts at one batch came to so far: carried from one attempt to the next.

    ``failures`` (every failed attempt) sets the backoff; ``counted`` (the failures that are
    not an outage: server errors and answers that did not come in time) is what
    ``MAX_RETRIES`` bounds.
    """

    failures: int = 0
    counted: int = 0


@dataclass(frozen=True)
class Result:
    """What one attempt at a batch came to, and what to do next.

    ``DELIVERED`` and ``DROP`` are final (already counted, logged and signalled; ``reason`` is
    the drop's code); ``RETRY``: try again in ``delay`` seconds; ``TOO_LARGE``: the API refused
    the body's size: send each half on its own.
    """

    outcome: Outcome
    delay: float = 0.0
    reason: str | None = None


class Delivery:
    """Delivers events in as few requests as the limits allow, retrying what may succeed later.

    ``waiting`` says how many more events wait behind the batch at hand (the threaded
    backend's queue), for the outage log lines.
    """

    def __init__(
        self,
        settings: Settings,
        counters: Counters,
        *,
        reporter: Reporter | None = None,
        waiting: Callable[[], int] = lambda: 0,
    ) -> None:
        self.settings = settings
        self.client = DataApiClient(settings)
        self.counters = counters
        self.reporter = reporter or Reporter(counters, type(self))
        self.waiting = waiting
        self.max_events = settings.MAX_BATCH_EVENTS
        self.max_bytes = min(settings.MAX_BATCH_BYTES, MAX_BODY_BYTES)
        #: How long to wait for an answer: ``TIMEOUT``, grown (up to ``READ_TIMEOUT_MAX``)
        #: while the API answers slower, and back down as it answers faster.
        self.read_timeout = settings.TIMEOUT

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

    def drop(
        self, events: Sequence[Event], reason: str, detail: str, level: int = logging.WARNING
    ) -> None:
        """Give events up: count them, log why (without visitor data), and tell receivers."""
        self.reporter.dropped(reason, events, detail, level=level)

    def close(self) -> None:
        self.client.close()

    def encode(self, batch: Sequence[Event]) -> list[bytes]:
        return [self.client.encode(event) for event in batch]

    def encode_in_pieces(self, events: Sequence[Event]) -> list[bytes]:
        """:meth:`encode`, letting requests run after each ``EVENTS_PER_PIECE`` events."""
        encode = self.client.encode
        encoded: list[bytes] = []
        for start in range(0, len(events), EVENTS_PER_PIECE):
            encoded += map(encode, events[start : start + EVENTS_PER_PIECE])
            let_requests_run()
        return encoded

    def _batches(self, events: Sequence[Event]) -> list[tuple[list[Event], list[bytes]]]:
        """Group events into bodies within ``MAX_BATCH_EVENTS`` and ``MAX_BATCH_BYTES``.

        The sender's loop over every event, encoded first in pieces: sizes are compared
        against bounds worked out once (``used`` counts each event's bytes and the separator
        after it, so a body of ``used`` is ``used - 1`` plus what wraps the events).
        """
        all_encoded = self.encode_in_pieces(events)
        wrapping = self.client.body_size(0, 1)
        largest = MAX_BODY_BYTES - wrapping
        room = self.max_bytes - wrapping
        sizes = list(map(len, all_encoded))
        if (
            len(events) <= self.max_events
            and sum(sizes) + len(sizes) - 1 <= room
            and max(sizes, default=0) <= largest
        ):
            # The usual batch: one body, as the loop below would make it, in fewer steps.
            return [(list(events), all_encoded)] if events else []
        batches: list[tuple[list[Event], list[bytes]]] = []
        batch: list[Event] = []
        encoded: list[bytes] = []
        used = 0
        for event, data in zip(events, all_encoded, strict=True):
            if len(data) > largest:
                self.drop([event], OVERSIZE, f"{event.event_type} event over the API's 3 MB")
                continue
            if batch and (len(batch) >= self.max_events or used + len(data) > room):
                batches.append((batch, encoded))
                batch, encoded, used = [], [], 0
            batch.append(event)
            encoded.append(data)
            used += len(data) + 1
        if batch:
            batches.append((batch, encoded))
        return batches

    def _send(
        self, batch: list[Event], encoded: list[bytes], deadline: Deadline, wait: Wait
    ) -> list[Event]:
        """One body, retried until delivered, refused, out of retries, or out of time."""
        tries = Tries()
        while True:
            until = _resolve(deadline)
            remaining = None if until is None else until - time.monotonic()
            if remaining is not None and remaining <= 0:
                return batch
            result = self.attempt(batch, tries, encoded=encoded, timeout=remaining)
            if result.outcome is Outcome.TOO_LARGE:
                return self._split(batch, encoded, deadline, wait)
            if result.outcome is not Outcome.RETRY:
                return []
            until = _resolve(deadline)
            if until is not None and time.monotonic() + result.delay >= until:
                return batch
            self.counters.retried += len(batch)
            wait(result.delay)

    def attempt(
        self,
        batch: list[Event],
        tries: Tries,
        *,
        encoded: list[bytes] | None = None,
        timeout: float | None = None,
    ) -> Result:
        """One try at one batch: post it, count and report the outcome, say what comes next.

        An outage (no connection, 429, 502, 503, 504) is waited out for as long as it lasts,
        with backoff: the events could still be delivered, and the queue's bound already limits
        what waits meanwhile. ``MAX_RETRIES`` counts the other failures (a 500, say, which may
        be this batch's own doing and must not block the queue), and answers that did not come
        within the read timeout: the request reached the API, which may be slow, so the next
        attempt waits longer (doubled, up to ``READ_TIMEOUT_MAX``), and the copies it may have
        accepted are bounded by the budget (the API recognises them by their nonces).
        ``timeout`` caps this attempt's whole wait (a deadline).
        """
        answer = self._post(encoded or self.encode(batch), timeout)
        self.counters.requests += 1
        if not answer.outage:  # the API answered, or at least took the request
            self.reporter.recovered(self.waiting())
        if answer.outcome is Outcome.DELIVERED:
            self.counters.sent += len(batch)
            # Wait for answers twice as long as this one took, but never less than TIMEOUT.
            self.read_timeout = max(
                self.settings.TIMEOUT, min(self.read_timeout, 2 * answer.elapsed)
            )
            events_delivered.send_robust(sender=type(self), events=batch)
            return Result(Outcome.DELIVERED)
        if answer.outcome is Outcome.TOO_LARGE:
            if len(batch) > 1:
                return Result(Outcome.TOO_LARGE)
            self.drop(batch, OVERSIZE, "the Data API found the event too large (HTTP 413)")
            return Result(Outcome.DROP, reason=OVERSIZE)
        if answer.outcome is Outcome.DROP:
            level = logging.ERROR if answer.code == REDIRECT else logging.WARNING
            self.drop(batch, answer.code, f"the Data API refused them ({answer.reason})", level)
            return Result(Outcome.DROP, reason=answer.code)
        return self._retry(batch, tries, answer)

    def _retry(self, batch: list[Event], tries: Tries, answer: Answer) -> Result:
        tries.failures += 1
        tries.counted += 0 if answer.outage else 1
        if tries.counted > self.settings.MAX_RETRIES:
            detail = f"no success after {tries.failures} attempts (last: {answer.reason})"
            self.drop(batch, SERVER_ERROR, detail)
            return Result(Outcome.DROP, reason=SERVER_ERROR)
        delay = self._backoff(tries.failures, answer)
        waiting = len(batch) + self.waiting()
        if answer.outage:
            self.reporter.outage(answer.reason, waiting)
            logger.info("%s %s; retry %d in %.1f s", prefix(), answer.reason, tries.failures, delay)
        elif answer.slow:
            self.read_timeout = min(self.read_timeout * 2, self.settings.read_timeout_max)
            logger.warning(
                "%s the Data API is slow: %s; retry %d of %d in %.1f s, waiting up to %g s; "
                "%d event(s) waiting",
                prefix(),
                answer.reason,
                tries.counted,
                self.settings.MAX_RETRIES,
                delay,
                self.read_timeout,
                waiting,
            )
        else:
            logger.info("%s %s; retry %d in %.1f s", prefix(), answer.reason, tries.failures, delay)
        return Result(Outcome.RETRY, delay=delay)

    def _post(self, encoded: list[bytes], timeout: float | None) -> Answer:
        """``client.post``, with any unexpected error (a bug below us) made a retryable failure.

        Retrying bounds the damage of a one-off error to a delay, and of a lasting one to
        ``MAX_RETRIES`` attempts, after which the batch is dropped and reported as usual.
        """
        try:
            return self.client.post(encoded, timeout=timeout, read_timeout=self.read_timeout)
        except Exception as exc:
            logger.error("%s unexpected %s while sending events", prefix(), type(exc).__name__)
            logger.debug("Kameleoon: sending error", exc_info=True)
            return Answer(Outcome.RETRY, f"unexpected {type(exc).__name__}")

    def _split(
        self, batch: list[Event], encoded: list[bytes], deadline: Deadline, wait: Wait
    ) -> list[Event]:
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
