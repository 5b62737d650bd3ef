"""Durable delivery, worker side: what a task of :mod:`django_kameleoon.tasks` does with the
batch it was handed.

It delivers through the same code as the threaded backend (:class:`Delivery`: the same bodies,
answers, splitting on 413, drops and signals), with one difference: a batch that should be
tried again later is not waited for here, in a worker slot, but handed back to the task queue
(Celery's ``retry(countdown=...)``, a deferred Django task) with the delay the delivery chose,
``Retry-After`` included. An outage is retried for as long as it lasts; other failures up to
``MAX_RETRIES`` in all, counted across the task's runs. The events keep their nonces, so the
API drops any it already has (after a worker died mid-request, say).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from django_kameleoon.backends.base import Counters
from django_kameleoon.backends.client import Answer
from django_kameleoon.backends.delivery import Delivery
from django_kameleoon.conf import Settings, get_settings
from django_kameleoon.events import Event

__all__ = ["Later", "WorkerDelivery", "deliver_batch", "worker_counters"]


@dataclass(frozen=True)
class Later:
    """Events to hand back to the queue, to run again after ``delay`` seconds.

    ``failures`` counts the failures other than outages so far, which ``MAX_RETRIES`` bounds.
    """

    events: list[dict[str, Any]]
    delay: float
    failures: int


class _Wait(Exception):
    """Raised where the delivery would sleep before a retry: the queue waits instead."""

    def __init__(self, delay: float) -> None:
        super().__init__(delay)
        self.delay = delay


class _GiveUp(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class WorkerDelivery(Delivery):
    """One try at each body of a batch; what should be retried comes back as :class:`Later`."""

    def attempt(self, events: Sequence[Event], *, run: int, failures: int) -> Later | None:
        """Try to deliver ``events`` once (``run``: how many times this batch ran, from 1)."""
        self._run, self._failures = run, failures
        bodies = self._batches(events)
        for index, (batch, encoded) in enumerate(bodies):
            try:
                self._send(batch, encoded, None, _raise_wait)
            except _Wait as wait:
                rest = [*batch, *(event for later, _ in bodies[index + 1 :] for event in later)]
                return Later([event.as_dict() for event in rest], wait.delay, self._failures)
            except _GiveUp as give_up:
                self.drop(batch, give_up.reason)
        return None

    def _backoff(self, attempt: int, answer: Answer) -> float:
        """The delay before the next run, counting this batch's runs rather than this run's
        attempts (always the first, here); gives up after ``MAX_RETRIES`` failures that were
        not outages."""
        if not answer.outage:
            self._failures += 1
            if self._failures > self.settings.MAX_RETRIES:
                raise _GiveUp(f"no success after {self._run} attempts (last: {answer.reason})")
        return super()._backoff(self._run, answer)


def _raise_wait(seconds: float) -> None:
    raise _Wait(seconds)


#: Running totals of this worker process (``sent``: delivered to the Data API).
worker_counters = Counters()
_local = threading.local()


def _delivery(settings: Settings) -> WorkerDelivery:
    """This thread's delivery for these settings: one HTTP session, kept between tasks."""
    found: tuple[int, Settings, WorkerDelivery] | None = getattr(_local, "delivery", None)
    if found is not None and found[0] == os.getpid() and found[1] is settings:
        return found[2]
    delivery = WorkerDelivery(settings, worker_counters)
    _local.delivery = (os.getpid(), settings, delivery)
    return delivery


def deliver_batch(payload: list[dict[str, Any]], *, run: int, failures: int) -> Later | None:
    """Deliver one task message's events; None when done (delivered or given up)."""
    settings = get_settings()
    events = [Event.from_dict(data) for data in payload]
    return _delivery(settings).attempt(events, run=run, failures=failures)
