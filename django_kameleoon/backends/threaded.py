"""The default backend: a bounded in-memory queue and one daemon sender thread per process.

The request path only appends to a deque under a lock; everything that can wait on the network
happens in the sender thread. The thread starts lazily on the first event, and again in a forked
child (gunicorn and Celery fork after import), where the parent's queue is discarded because the
parent still delivers it. At interpreter exit the queue is delivered within ``SHUTDOWN_TIMEOUT``.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
import weakref
from collections import deque
from collections.abc import Sequence
from dataclasses import asdict

from django_kameleoon.backends.base import BaseBackend
from django_kameleoon.backends.delivery import Counters, Delivery
from django_kameleoon.conf import Settings
from django_kameleoon.events import Event
from django_kameleoon.signals import events_dropped

__all__ = ["ThreadedBackend"]

logger = logging.getLogger("django_kameleoon")

#: How often a full queue is reported in the log, so that an outage does not flood it.
OVERFLOW_LOG_INTERVAL = 60.0

_live: weakref.WeakSet[ThreadedBackend] = weakref.WeakSet()


class ThreadedBackend(BaseBackend):
    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self.counters = Counters()
        self._max_queue = settings.MAX_QUEUE_SIZE
        self._batch = settings.MAX_BATCH_EVENTS
        self._interval = settings.FLUSH_INTERVAL
        self._reset()
        _live.add(self)

    def _reset(self) -> None:
        """Fresh state for this process: after a fork the parent's lock may be held forever."""
        self._pid = os.getpid()
        self._cond = threading.Condition(threading.Lock())
        self._queue: deque[Event] = deque()
        self._thread: threading.Thread | None = None
        self._delivery: Delivery | None = None
        self._stopping = False
        self._flushing = 0
        self._deadline: float | None = None
        self._stranded: list[Event] = []  # given up at shutdown, for close() to report
        self._accepted = 0  # events ever queued in this process
        self._finished = 0  # of those, how many were delivered or given up
        self._overflow = 0
        self._overflow_logged_at = -OVERFLOW_LOG_INTERVAL
        self.counters = Counters()

    # -- the request path --------------------------------------------------------------------

    def send(self, events: Sequence[Event]) -> None:
        if self._pid != os.getpid():
            self._reset()
        overflow: Sequence[Event] = ()
        with self._cond:
            room = self._max_queue - len(self._queue)
            if len(events) > room:
                events, overflow = events[: max(room, 0)], events[max(room, 0) :]
            self._queue.extend(events)
            self._accepted += len(events)
            if self._thread is None or not self._thread.is_alive():
                self._start()
            elif len(self._queue) >= self._batch:
                self._cond.notify()
        if overflow:
            self._drop_overflow(overflow)

    def _drop_overflow(self, events: Sequence[Event]) -> None:
        self.counters.dropped += len(events)
        self._overflow += len(events)
        now = time.monotonic()
        if now - self._overflow_logged_at >= OVERFLOW_LOG_INTERVAL:
            logger.warning(
                "Kameleoon: queue full (MAX_QUEUE_SIZE=%d); %d event(s) dropped so far",
                self._max_queue,
                self._overflow,
            )
            self._overflow_logged_at = now
        events_dropped.send(sender=type(self), events=list(events), reason="queue full")

    def _start(self) -> None:
        if self._stopping:
            return
        if self._thread is not None:
            logger.error("Kameleoon: the sender thread had stopped; starting it again")
        self._thread = threading.Thread(target=self._run, name="kameleoon-sender", daemon=True)
        self._thread.start()

    # -- the sender thread -------------------------------------------------------------------

    def _run(self) -> None:
        delivery = self._delivery = self._delivery or Delivery(self.settings, self.counters)
        while True:
            batch = self._next_batch()
            if batch is None:
                return
            try:
                left = delivery.deliver(batch, deadline=self._deadline, wait=self._wait)
            except Exception:
                logger.exception("Kameleoon: unexpected error while sending; events dropped")
                delivery.drop(batch, "unexpected error in the sender")
                left = []
            with self._cond:
                self._stranded.extend(left)  # only at shutdown: close() reports them
                self._finished += len(batch)
                self._cond.notify_all()

    def _next_batch(self) -> list[Event] | None:
        """Wait for a full batch, a flush, the interval, or shutdown; None when done."""
        with self._cond:
            due = time.monotonic() + self._interval
            while not self._stopping and not self._flushing and len(self._queue) < self._batch:
                remaining = due - time.monotonic()
                if remaining <= 0:
                    break
                self._cond.wait(remaining)
            if not self._queue:
                return None if self._stopping else []
            count = min(len(self._queue), self._batch)
            return [self._queue.popleft() for _ in range(count)]

    def _wait(self, seconds: float) -> bool:
        """Back off between retries, but wake at once when the process starts shutting down."""
        with self._cond:
            self._cond.wait_for(lambda: self._stopping, timeout=seconds)
            return self._stopping

    # -- flush, exit, stats ------------------------------------------------------------------

    def flush(self, timeout: float | None = None) -> bool:
        if self._pid != os.getpid():
            self._reset()
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            target = self._accepted
            if self._finished >= target:
                return True
            if self._thread is None or not self._thread.is_alive():
                self._start()
            self._flushing += 1
            self._cond.notify_all()
            try:
                while self._finished < target:
                    remaining = None if deadline is None else deadline - time.monotonic()
                    if remaining is not None and remaining <= 0:
                        break
                    self._cond.wait(remaining)
            finally:
                self._flushing -= 1
            return self._finished >= target

    def close(self, timeout: float | None = None) -> None:
        """Deliver what is queued within ``timeout`` (default ``SHUTDOWN_TIMEOUT``), then stop."""
        if self._pid != os.getpid():
            return
        timeout = self.settings.SHUTDOWN_TIMEOUT if timeout is None else timeout
        with self._cond:
            if self._stopping:
                return
            self._deadline = time.monotonic() + timeout
            pending = len(self._queue)
            thread = self._thread
            if pending and (thread is None or not thread.is_alive()):
                self._start()
                thread = self._thread
            self._stopping = True
            self._cond.notify_all()
        if thread is not None:
            thread.join(max(self._deadline - time.monotonic(), 0) + 0.5)
        with self._cond:
            in_flight = self._accepted - self._finished - len(self._queue)
            stranded = self._stranded + list(self._queue)
            self._stranded, self._queue = [], deque()
        if stranded or in_flight:
            self.counters.dropped += len(stranded) + in_flight
            logger.warning(
                "Kameleoon: %d event(s) could not be delivered within SHUTDOWN_TIMEOUT (%g s) "
                "and are lost",
                len(stranded) + in_flight,
                timeout,
            )
            events_dropped.send(sender=type(self), events=stranded, reason="shutdown timeout")
        if self._delivery is not None:
            self._delivery.close()

    def stats(self) -> dict[str, int]:
        counts = asdict(self.counters)
        return {
            "queued": len(self._queue),
            "sent": counts["sent"],
            "retried": counts["retried"],
            "dropped": counts["dropped"],
            "requests": counts["requests"],
        }


def _close_all_at_exit() -> None:
    for backend in list(_live):
        backend.close()


def _forget_parent_queues() -> None:
    for backend in list(_live):
        backend._reset()


atexit.register(_close_all_at_exit)
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_parent_queues)
