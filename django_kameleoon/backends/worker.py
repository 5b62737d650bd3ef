"""Durable delivery, worker side: what a task of :mod:`django_kameleoon.tasks` does with the
batch it was handed.

It delivers through the same code as the threaded backend (:meth:`Delivery.attempt`: the same
bodies, answers, splitting on 413, drops with their reason codes, signals), with one
difference: a batch that should be tried again later is not waited for here, in a worker slot,
but handed back to the task queue (Celery's ``retry(countdown=...)``, a deferred Django task)
with the delay the delivery chose, ``Retry-After`` included, and the :class:`Tries` so far, so
that an outage is retried for as long as it lasts and other failures up to ``MAX_RETRIES`` in
all, across the task's runs. The events keep their nonces, so the API drops any it already has
(after a worker died mid-request, say).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from django_kameleoon.backends.base import Counters
from django_kameleoon.backends.client import Outcome
from django_kameleoon.backends.delivery import Delivery, Tries
from django_kameleoon.conf import Settings, get_settings
from django_kameleoon.events import Event

__all__ = ["Later", "WorkerDelivery", "deliver_batch", "worker_counters"]


@dataclass(frozen=True)
class Later:
    """Events to hand back to the queue, to run again after ``delay`` seconds, and the
    :class:`Tries` (``failures``, ``counted``) so far."""

    events: list[dict[str, Any]]
    delay: float
    failures: int
    counted: int


class WorkerDelivery(Delivery):
    """One try at each body of a batch; what should be retried comes back as :class:`Later`."""

    def once(self, events: Sequence[Event], tries: Tries) -> Later | None:
        """Try each body of ``events`` once; None when all are delivered or given up."""
        pending = [batch for batch, _encoded in self._batches(events)]
        while pending:
            batch = pending.pop(0)
            result = self.attempt(batch, tries)
            if result.outcome is Outcome.TOO_LARGE:  # each half on its own
                half = len(batch) // 2
                pending[:0] = [batch[:half], batch[half:]]
            elif result.outcome is Outcome.RETRY:
                rest = [*batch, *(event for later in pending for event in later)]
                self.counters.retried += len(rest)
                payload = [event.as_dict() for event in rest]
                return Later(payload, result.delay, tries.failures, tries.counted)
        return None


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


def deliver_batch(
    payload: list[dict[str, Any]], *, failures: int = 0, counted: int = 0
) -> Later | None:
    """Deliver one task message's events; None when done (delivered or given up)."""
    settings = get_settings()
    events = [Event.from_dict(data) for data in payload]
    return _delivery(settings).once(events, Tries(failures, counted))
