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
from django_kameleoon.events import Event, reseed_nonces
from django_kameleoon.signals import events_dropped

__all__ = ["ThreadedBackend", "forget_parent_queues"]

logger = logging.getLogger("django_kameleoon")

#: How often a full queue is reported in the log, so that an outage does not flood it.
OVERFLOW_LOG_INTERVAL = 60.0

#: How often a waiting ``flush()`` checks that the sender thread is still alive.
LIVENESS_INTERVAL = 0.25

_live: weakref.WeakSet[ThreadedBackend] = weakref.WeakSet()


class ThreadedBackend(BaseBackend):
    #: How batches are sent; a subclass may substitute its own (for tests, or another transport).
    delivery_class: type[Delivery] = Delivery

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
        self._lock = threading.Lock()
        # One lock for both: send() takes the bare lock, which costs less than the condition.
        self._cond = threading.Condition(self._lock)
        self._queue: deque[Event] = deque()
        self._thread: threading.Thread | None = None
        self._running = False  # cleared by the sender thread itself as it ends
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

    def _forked(self) -> None:
        """In a child the at-fork hooks missed (ours below; ``workers.after_fork_in_child``
        under uWSGI): the pid check, at ~0.2 µs a call, catches it and does their work."""
        reseed_nonces()
        self._reset()

    # -- the request path --------------------------------------------------------------------

    def send(self, events: Sequence[Event]) -> None:
        if self._pid != os.getpid():
            self._forked()
        overflow: Sequence[Event] = ()
        with self._lock:
            room = self._max_queue - len(self._queue)
            if len(events) > room:
                events, overflow = events[: max(room, 0)], events[max(room, 0) :]
            self._queue.extend(events)
            self._accepted += len(events)
            if not self._running:
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
        # On the request path: a site's receiver that raises must not fail the request.
        events_dropped.send_robust(sender=type(self), events=list(events), reason="queue full")

    def _sender_alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _start(self) -> None:
        if self._stopping:
            return
        if self._thread is not None:
            logger.error("Kameleoon: the sender thread had stopped; starting it again")
        self._thread = threading.Thread(target=self._run, name="kameleoon-sender", daemon=True)
        self._running = True
        self._thread.start()

    # -- the sender thread -------------------------------------------------------------------

    def _run(self) -> None:
        try:
            delivery = self._delivery = self._delivery or self.delivery_class(
                self.settings, self.counters
            )
            while True:
                batch = self._next_batch()
                if batch is None:
                    return
                self._deliver(delivery, batch)
        except BaseException as exc:
            # Nothing should get here. If something does, say so (the type only: a message may
            # quote visitor data) and let the thread end; the next send() or a waiting flush()
            # starts a new one, which picks up the batch that was in hand.
            logger.error(
                "Kameleoon: the sender thread stopped on an unexpected %s", type(exc).__name__
            )
            logger.debug("Kameleoon: sender thread error", exc_info=True)
        finally:
            with self._cond:
                if self._thread is threading.current_thread():
                    self._running = False
                self._cond.notify_all()

    def _deliver(self, delivery: Delivery, batch: list[Event]) -> None:
        """Send one batch and account for it, whatever happens: ``flush()`` counts on that."""
        left: list[Event] = []
        accounted = False
        try:
            try:
                left = delivery.deliver(batch, deadline=self._get_deadline, wait=self._wait)
            except Exception as exc:
                logger.error(
                    "Kameleoon: unexpected %s in the sender; %d event(s) dropped",
                    type(exc).__name__,
                    len(batch),
                )
                logger.debug("Kameleoon: sender error", exc_info=True)
                delivery.drop(batch, "unexpected error in the sender")
            accounted = True
        finally:
            with self._cond:
                if accounted:
                    self._stranded.extend(left)  # only at shutdown: close() reports them
                    self._finished += len(batch)
                else:  # the thread is dying: the batch goes back for the next sender thread
                    self._queue.extendleft(reversed(batch))
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

    def _get_deadline(self) -> float | None:
        """None while the process runs; from ``close()`` on, the end of ``SHUTDOWN_TIMEOUT``."""
        return self._deadline

    def _wait(self, seconds: float) -> bool:
        """Back off between retries; when shutdown begins, stop waiting and try again at once.

        From then on the shutdown deadline rules: the delivery keeps retrying (a 503 at exit
        must not lose the queue) until a backoff would take it past the deadline.
        """
        with self._cond:
            if self._stopping:
                self._cond.wait_for(lambda: False, timeout=seconds)  # deaf to other wake-ups
            else:
                self._cond.wait_for(lambda: self._stopping, timeout=seconds)
            return False

    # -- flush, exit, stats ------------------------------------------------------------------

    def flush(self, timeout: float | None = None) -> bool:
        if self._pid != os.getpid():
            self._forked()
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            target = self._accepted
            if self._finished >= target:
                return True
            if not self._sender_alive():
                self._start()
            self._flushing += 1
            self._cond.notify_all()
            try:
                while self._finished < target:
                    remaining = None if deadline is None else deadline - time.monotonic()
                    if remaining is not None and remaining <= 0:
                        break
                    if self._stopping and not self._sender_alive():
                        break  # closed: nothing will move any more
                    wait = LIVENESS_INTERVAL if remaining is None else remaining
                    self._cond.wait(min(wait, LIVENESS_INTERVAL))
                    if not self._sender_alive():
                        self._start()  # a sender that died must not leave us waiting forever
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
            if pending and not self._sender_alive():
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
            self._finished = self._accepted  # all delivered or given up: no flush may wait
        if stranded or in_flight:
            self.counters.dropped += len(stranded) + in_flight
            logger.warning(
                "Kameleoon: %d event(s) could not be delivered within SHUTDOWN_TIMEOUT (%g s) "
                "and are lost",
                len(stranded) + in_flight,
                timeout,
            )
            events_dropped.send_robust(
                sender=type(self), events=stranded, reason="shutdown timeout"
            )
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


def forget_parent_queues() -> None:
    """In a forked child: start afresh, leaving the parent's queue to the parent.

    Runs after every ``os.fork()``; ``workers.after_fork_in_child`` runs it where a server
    forks without Python's at-fork handlers (uWSGI).
    """
    for backend in list(_live):
        backend._reset()


atexit.register(_close_all_at_exit)
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=forget_parent_queues)
