"""Durable delivery, web side: batches leave the process as task messages of the site's own
task queue (Celery, Django's Tasks framework), whose workers deliver them to the Data API.

:class:`HandoffBackend` is the threaded backend with one step changed: its sender thread, the
*hand-off thread* here, publishes each batch as one task message instead of POSTing it. So the
request path is the threaded backend's (an append to a bounded buffer), and so are the batching,
``flush()``, the fork handling and the delivery at exit, which here means "handed to the queue".
What a worker does with the message is in :mod:`django_kameleoon.backends.worker`.

``HANDOFF = "inline"`` adds one step to ``send()``: it waits, at most ``HANDOFF_TIMEOUT``
seconds, until the hand-off thread has published what the request tracked, so that nothing
waits in the web process's memory once the response is sent. Requests that arrive together are
published together (one message), and while the queue is failing (an error, or a wait that
timed out) ``send()`` does not wait at all: pages keep their speed, and the events wait in the
buffer as in ``"batched"`` mode until a publish succeeds again.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any

from django.core.exceptions import ImproperlyConfigured

from django_kameleoon.backends.base import Counters
from django_kameleoon.backends.client import Answer, Outcome
from django_kameleoon.backends.delivery import Deadline, Delivery, Wait, _resolve
from django_kameleoon.backends.threaded import ThreadedBackend
from django_kameleoon.conf import Problem, Settings
from django_kameleoon.events import Event, PendingEvents

__all__ = ["HandoffBackend", "Publisher"]

logger = logging.getLogger("django_kameleoon")

#: The events of one task message, as the worker receives them: ``Event.as_dict()`` each.
Payload = list[dict[str, Any]]


class Publisher(Delivery):
    """The hand-off thread's "delivery": one task message per batch, retried while the queue
    is unreachable (with the delivery's backoff), never dropped for that.

    ``sent`` counts events handed to the queue, ``requests`` the messages published; batches
    keep the delivery's limits (``MAX_BATCH_EVENTS``, ``MAX_BATCH_BYTES``), so that a worker
    posts each message as one body.
    """

    def __init__(self, settings: Settings, counters: Counters, **options: Any) -> None:
        super().__init__(settings, counters, **options)
        #: Set while publishing fails, cleared by the next success: ``inline`` mode does not
        #: make requests wait for a queue that is down.
        self.failing = False

    def publish(self, payload: Payload) -> None:
        """Put one task message on the queue; raise if it could not be."""
        raise NotImplementedError

    def deliver(
        self, events: Sequence[Event], *, deadline: Deadline = None, wait: Wait = time.sleep
    ) -> list[Event]:
        left: list[Event] = []
        for batch, _encoded in self._batches(events):
            if left:
                left.extend(batch)
            else:
                left.extend(self._hand_off(batch, deadline, wait))
        return left

    def _hand_off(self, batch: list[Event], deadline: Deadline, wait: Wait) -> list[Event]:
        """Publish one batch, retrying until it is published or ``deadline`` comes."""
        payload = [event.as_dict() for event in batch]
        failures = 0
        while True:
            until = _resolve(deadline)
            if until is not None and time.monotonic() >= until:
                return batch
            try:
                self.publish(payload)
            except Exception as exc:
                failures += 1
                self.failing = True
                delay = self._backoff(failures, Answer(Outcome.RETRY, type(exc).__name__))
                # The type only: a broker's message may quote the payload.
                log = logger.warning if failures == 1 else logger.info
                log(
                    "Kameleoon: could not hand %d event(s) to the task queue (%s); retry %d in "
                    "%.1f s",
                    len(batch),
                    type(exc).__name__,
                    failures,
                    delay,
                )
                logger.debug("Kameleoon: hand-off error", exc_info=True)
                until = _resolve(deadline)
                if until is not None and time.monotonic() + delay >= until:
                    return batch
                self.counters.retried += len(batch)
                wait(delay)
                continue
            self.failing = False
            self.counters.requests += 1
            self.counters.sent += len(batch)
            return []


class HandoffBackend(ThreadedBackend):
    """The threaded backend, handing batches to a task queue; see the module docstring."""

    delivery_class: type[Publisher] = Publisher

    def __init__(self, settings: Settings) -> None:
        errors = [p.message for p in self.setup_problems(settings) if p.check_id.startswith("E")]
        if errors:
            raise ImproperlyConfigured("; ".join(errors))
        super().__init__(settings)
        self._inline = settings.HANDOFF == "inline"
        self._handoff_timeout = settings.HANDOFF_TIMEOUT

    @classmethod
    def setup_problems(cls, settings: Settings) -> list[Problem]:
        """What stops this backend from working (``E`` ids) or from being durable (``W``),
        for the system check and for ``__init__``, which refuses to start on an error."""
        return []

    def send_later(self, pending: PendingEvents) -> None:
        """Inline, the request waits for the hand-off anyway: the events are made now."""
        if self._inline:
            self.send(pending.build())
        else:
            super().send_later(pending)

    def send(self, events: Sequence[Event]) -> None:
        super().send(events)
        if not (self._inline and events):
            return
        publisher = self._delivery
        if isinstance(publisher, Publisher) and publisher.failing:
            return
        # A broker that hangs (no error, no answer) would otherwise cost every request the
        # whole HANDOFF_TIMEOUT; one is enough, until a publish succeeds again. (The publisher
        # is looked up again: the first flush starts the thread that makes it.)
        if not self.flush(self._handoff_timeout) and isinstance(self._delivery, Publisher):
            self._delivery.failing = True
