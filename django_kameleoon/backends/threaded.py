"""The default backend: a bounded in-memory queue and one daemon sender thread per process.

The request path only appends to a deque under a lock; everything that can wait on the network
happens in the sender thread. The thread starts lazily on the first event, and again in a forked
child (gunicorn and Celery fork after import), where the parent's queue is discarded because the
parent still delivers it. At interpreter exit the queue is delivered within ``SHUTDOWN_TIMEOUT``.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import deque
from collections.abc import Sequence

from django_kameleoon import lifecycle
from django_kameleoon.backends.base import BaseBackend
from django_kameleoon.backends.delivery import Delivery
from django_kameleoon.conf import Settings
from django_kameleoon.events import Event
from django_kameleoon.signals import events_dropped

__all__ = ["ThreadedBackend"]

logger = logging.getLogger("django_kameleoon")

#: How often a full queue is reported in the log, so that an outage does not flood it.
OVERFLOW_LOG_INTERVAL = 60.0

#: How often a waiting ``flush()`` checks that the sender thread is still alive.
LIVENESS_INTERVAL = 0.25


class ThreadedBackend(BaseBackend):
    #: How batches are sent; a subclass may substitute its own (for tests, or another transport).
    delivery_class: type[Delivery] = Delivery

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self._max_queue = settings.MAX_QUEUE_SIZE
        self._batch = settings.MAX_BATCH_EVENTS
        self._interval = settings.FLUSH_INTERVAL
        self._reset()

    def after_fork(self) -> None:
        """Forget the parent's queue and thread; its lock may be held forever in this child."""
        super().after_fork()
        self._reset()

    def _reset(self) -> None:
        """Fresh state for this process."""
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
        self._in_flight: list[Event] = []  # the batch the sender thread is delivering
        self._stranded: list[Event] = []  # given up at shutdown, for close() to report
        self._accepted = 0  # events ever queued in this process
        self._finished = 0  # of those, how many were delivered or given up
        self._overflow = 0
        self._overflow_logged_at = -OVERFLOW_LOG_INTERVAL

    # -- the request path --------------------------------------------------------------------

    def send(self, events: Sequence[Event]) -> None:
        if self._pid != os.getpid():
            # A child that the at-fork hooks missed (a server forking in C without the uWSGI
            # hook): the pid check, at ~0.2 µs a call, catches it and does their work.
            lifecycle.after_fork_in_child()
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
                if self._in_flight is not batch:
                    pass  # close() gave up waiting for it and reported it lost already
                elif accounted:
                    self._stranded.extend(left)  # only at shutdown: close() reports them
                    self._finished += len(batch)
                else:  # the thread is dying: the batch goes back for the next sender thread
                    self._queue.extendleft(reversed(batch))
                self._in_flight = []
                self._cond.notify_all()

    def _next_batch(self) -> list[Event] | None:
        """Wait for a full batch, a flush, the interval, or shutdown; None when done.

        A flush with nothing queued is no reason to return: ``flush()`` callers that have been
        answered but not yet run would otherwise keep this thread spinning on empty batches.
        """
        with self._cond:
            due = time.monotonic() + self._interval
            while (
                not self._stopping
                and not (self._flushing and self._queue)
                and len(self._queue) < self._batch
            ):
                remaining = due - time.monotonic()
                if remaining <= 0:
                    break
                self._cond.wait(remaining)
            if not self._queue:
                return None if self._stopping else []
            count = min(len(self._queue), self._batch)
            self._in_flight = [self._queue.popleft() for _ in range(count)]
            return self._in_flight

    def _get_deadline(self) -> float | None:
        """None while the process runs; from ``close()`` on, the end of ``SHUTDOWN_TIMEOUT``."""
        return self._deadline

    def _wait(self, seconds: float) -> None:
        """Back off between retries; when shutdown begins, stop waiting and try again at once.

        From then on the shutdown deadline rules: the delivery keeps retrying (a 503 at exit
        must not lose the queue) until a backoff would take it past the deadline.
        """
        with self._cond:
            if self._stopping:
                self._cond.wait_for(lambda: False, timeout=seconds)  # deaf to other wake-ups
            else:
                self._cond.wait_for(lambda: self._stopping, timeout=seconds)

    # -- flush, exit, stats ------------------------------------------------------------------

    def flush(self, timeout: float | None = None) -> bool:
        if self._pid != os.getpid():
            lifecycle.after_fork_in_child()
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
        """Deliver what is queued within ``timeout`` (default ``SHUTDOWN_TIMEOUT``), then stop.

        What is still undelivered then (queued, in the sender's hands, or given up at the
        deadline) is lost: counted in ``stats()``, logged once, and sent with
        ``events_dropped``, the same events in all three.
        """
        super().close(timeout)
        if self._pid != os.getpid():
            return
        timeout = self.settings.SHUTDOWN_TIMEOUT if timeout is None else timeout
        with self._cond:
            if self._stopping:
                return
            self._deadline = time.monotonic() + timeout
            thread = self._thread
            if self._queue and not self._sender_alive():
                self._start()
                thread = self._thread
            self._stopping = True
            self._cond.notify_all()
        if thread is not None:
            thread.join(max(self._deadline - time.monotonic(), 0) + 0.5)
        with self._cond:
            lost = self._stranded + self._in_flight + list(self._queue)
            self._stranded, self._in_flight, self._queue = [], [], deque()
            self._finished = self._accepted  # all delivered or given up: no flush may wait
        if lost:
            self.counters.dropped += len(lost)
            logger.warning(
                "Kameleoon: %d event(s) could not be delivered within SHUTDOWN_TIMEOUT (%g s) "
                "and are lost",
                len(lost),
                timeout,
            )
            events_dropped.send_robust(sender=type(self), events=lost, reason="shutdown timeout")
        if self._delivery is not None:
            self._delivery.close()

    def queued(self) -> int:
        return len(self._queue)
