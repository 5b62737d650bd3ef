"""The default backend: a bounded in-memory queue and one daemon sender thread per process.

The request path only appends to a deque under a lock; everything that can wait on the network
happens in the sender thread. The thread starts lazily on the first event, and again in a forked
child (gunicorn and Celery fork after import), where the parent's queue is discarded because the
parent still delivers it. At interpreter exit the queue is delivered within ``SHUTDOWN_TIMEOUT``.

A full queue costs the request path one addition: the events are only counted there, and the
sender thread logs and signals them (``reporting``). Code that serves no request (a script, a
management command; see ``scope``) waits for room instead, up to ``FLUSH_TIMEOUT``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Sequence
from typing import Any

from django_kameleoon import lifecycle
from django_kameleoon.backends.base import BaseBackend
from django_kameleoon.backends.delivery import EVENTS_PER_PIECE, Delivery, let_requests_run
from django_kameleoon.backends.reporting import (
    ERROR,
    QUEUE_FULL,
    SHUTDOWN_TIMEOUT,
    Reporter,
)
from django_kameleoon.conf import Settings
from django_kameleoon.events import Event, PendingEvents
from django_kameleoon.scope import in_request

__all__ = ["ThreadedBackend"]

#: What the queue holds: events, and events to be made by the sender (a page view's).
Item = Event | PendingEvents

logger = logging.getLogger("django_kameleoon")

#: How often a waiting ``flush()`` checks that the sender thread is still alive.
LIVENESS_INTERVAL = 0.25

#: The longest the sender thread goes without reporting a full queue, even while it backs off.
REPORT_INTERVAL = 1.0


def _in_event_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def release(batch: list[Event]) -> None:
    """Let go of a delivered batch a piece at a time, letting requests run between pieces.

    Dropping the last reference to a 1,000-event list frees every event in one C call, which
    held the interpreter for up to a millisecond while request threads waited for it (issue 13).
    """
    while batch:
        del batch[-EVENTS_PER_PIECE:]
        let_requests_run()


class ThreadedBackend(BaseBackend):
    #: How batches are sent; a subclass may substitute its own (for tests, or another transport).
    delivery_class: type[Delivery] = Delivery

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self._max_queue = settings.MAX_QUEUE_SIZE
        self._batch = settings.MAX_BATCH_EVENTS
        self._interval = settings.FLUSH_INTERVAL
        self.reporter = Reporter(self.counters, type(self))
        self._reset()

    def after_fork(self) -> None:
        """Forget the parent's queue and thread; its lock may be held forever in this child."""
        super().after_fork()
        self.reporter = Reporter(self.counters, type(self))
        self._reset()

    def _reset(self) -> None:
        """Fresh state for this process."""
        self._pid = os.getpid()
        self._lock = threading.Lock()
        # One lock for both: send() takes the bare lock, which costs less than the condition.
        self._cond = threading.Condition(self._lock)
        self._room = threading.Condition(self._lock)  # for callers waiting for room (no request)
        self._queue: deque[Item] = deque()
        self._size = 0  # the events in the queue, made or not
        self._thread: threading.Thread | None = None
        self._running = False  # cleared by the sender thread itself as it ends
        self._delivery: Delivery | None = None
        self._stopping = False
        self._flushing = 0
        self._deadline: float | None = None
        self._in_flight: Sequence[Item] = []  # the batch the sender thread is delivering
        self._stranded: list[Item] = []  # given up at shutdown, for close() to report
        self._accepted = 0  # events ever queued in this process
        self._finished = 0  # of those, how many were delivered or given up
        self._overflow = 0  # dropped for a full queue, not yet reported by the sender
        self._room_waiters = 0
        self._due: float | None = None  # when the sender sends a partial batch
        self._gave_up_waiting = False  # a wait for room timed out: none until the queue moves

    # -- the request path --------------------------------------------------------------------

    def send(self, events: Sequence[Event]) -> None:
        self._check_pid()
        with self._lock:
            room = self._max_queue - self._size
            if len(events) > room and self._may_wait():
                room = self._wait_for_room(min(len(events), self._max_queue))
            if len(events) > room:
                events, overflow = events[: max(room, 0)], events[max(room, 0) :]
                # Only counted, not kept (memory stays bounded): the sender thread logs and
                # signals the count.
                self._overflow += len(overflow)
            self._queue.extend(events)
            self._added(len(events))

    def send_later(self, pending: PendingEvents) -> None:
        """Queue the events unmade, for the sender thread to make as it takes them; when they
        do not all fit, made now and sent as :meth:`send` does (which may wait for room)."""
        if pending.count <= 0:
            return  # nothing to make: an empty item would only upset the counts
        self._check_pid()
        with self._lock:
            if pending.count <= self._max_queue - self._size:
                self._queue.append(pending)
                self._added(pending.count)
                return
        super().send_later(pending)

    def _check_pid(self) -> None:
        if self._pid != os.getpid():
            # A child that the at-fork hooks missed (a server forking in C without the uWSGI
            # hook): the pid check, at ~0.2 µs a call, catches it and does their work.
            lifecycle.after_fork_in_child()

    def _added(self, count: int) -> None:
        """Holding the lock: ``count`` events were queued; wake the sender for a full batch."""
        self._size += count
        self._accepted += count
        if not self._running:
            self._start()
        elif self._size >= self._batch:
            self._cond.notify()

    def _may_wait(self) -> bool:
        """Whether this caller may wait for room: not a request, not the sender itself, not
        an event loop (a websocket consumer serves many clients)."""
        return not (
            self._gave_up_waiting
            or self._stopping
            or in_request()
            or threading.current_thread() is self._thread
            or _in_event_loop()
        )

    def _wait_for_room(self, count: int) -> int:
        """Wait (holding the lock's condition) until ``count`` events fit, up to
        ``FLUSH_TIMEOUT``; the room there is then. A wait that times out is not repeated until
        the sender takes events out again: an outage must not slow a script down per event."""
        if not self._sender_alive():
            self._start()
        self._cond.notify()
        deadline = time.monotonic() + self.settings.FLUSH_TIMEOUT
        self._room_waiters += 1
        try:
            while self._size + count > self._max_queue and not self._stopping:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    self._gave_up_waiting = True
                    break
                self._room.wait(remaining)
        finally:
            self._room_waiters -= 1
        return self._max_queue - self._size

    def _report_overflow(self) -> None:
        """In the sender thread: log and signal what the request path dropped since last time."""
        with self._lock:
            count, self._overflow = self._overflow, 0
            # Counted under the lock, so that stats() never counts them twice or not at all.
            self.reporter.count(QUEUE_FULL, count)
        if not count:
            return  # the usual case, once per batch: nothing to say
        detail = f"MAX_QUEUE_SIZE={self._max_queue} reached"
        self.reporter.dropped(QUEUE_FULL, (), detail, count=count, counted=True)

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
        lifecycle.keep_stop_signals_off_this_thread()
        try:
            delivery = self._delivery = self._delivery or self.delivery_class(
                self.settings, self.counters, reporter=self.reporter, waiting=self.queued
            )
            while True:
                items = self._next_batch()
                self._report_overflow()
                if items is None:
                    return
                batch = self._made(items)
                if batch:
                    self._deliver(delivery, batch)
                    release(batch)
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
                logger.debug("Kameleoon: sender error", exc_info=True)
                delivery.drop(
                    batch, ERROR, f"unexpected {type(exc).__name__} in the sender", logging.ERROR
                )
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
                    self._size += len(batch)
                self._in_flight = []
                self._cond.notify_all()

    def _made(self, items: list[Item]) -> list[Event]:
        """The events of a batch just taken, those queued unmade (a page view's) made now; they
        replace the items in flight. Empty when ``close()`` has reported the items lost."""
        events, counted = self._events_of(items)
        with self._cond:
            if self._in_flight is not items:
                return []
            self._in_flight = events
            if counted != len(events):  # some could not be made: they are finished with
                self._finished += counted - len(events)
                self._cond.notify_all()
        return events

    def _events_of(self, items: Sequence[Item]) -> tuple[list[Event], int]:
        """The events of queued items, and how many the items counted as. Those that cannot be
        made are logged and dropped (``error``): one bad item costs its own events, not the
        thread."""
        events: list[Event] = []
        counted = 0
        for index, item in enumerate(items, 1):
            if isinstance(item, Event):
                events.append(item)
                counted += 1
            else:
                counted += item.count
                try:
                    events.extend(item.build())
                except Exception as exc:
                    logger.debug("Kameleoon: error making queued events", exc_info=True)
                    self.reporter.dropped(
                        ERROR,
                        (),
                        f"unexpected {type(exc).__name__} making {type(item).__name__}'s events",
                        count=item.count,
                        level=logging.ERROR,
                    )
            if index % EVENTS_PER_PIECE == 0:
                let_requests_run()
        return events, counted

    def _next_batch(self) -> list[Item] | None:
        """Wait for a full batch, a flush, a caller waiting for room, the interval, or
        shutdown; None when done. An empty batch, early, when a full queue is to be reported
        (the interval, when it ends before the next one, goes on).

        A flush with nothing queued is no reason to return: ``flush()`` callers that have been
        answered but not yet run would otherwise keep this thread spinning on empty batches.
        """
        with self._cond:
            if self._due is None:
                self._due = time.monotonic() + self._interval
            while (
                not self._stopping
                and not ((self._flushing or self._room_waiters) and self._queue)
                and self._size < self._batch
            ):
                remaining = self._due - time.monotonic()
                if remaining <= 0:
                    break
                if self._overflow:
                    return []
                self._cond.wait(min(remaining, REPORT_INTERVAL))
            self._due = None
            if not self._queue:
                return None if self._stopping else []
            self._in_flight = self._take()
            self._gave_up_waiting = False
            if self._room_waiters:
                self._room.notify_all()
            return self._in_flight

    def _take(self) -> list[Item]:
        """Holding the lock: up to ``MAX_BATCH_EVENTS`` events from the head of the queue, and
        at least one item, however many events it holds."""
        if self._size == len(self._queue):  # events only: no counting needed
            count = min(self._size, self._batch)
            self._size -= count
            return [self._queue.popleft() for _ in range(count)]
        taken: list[Item] = []
        count = 0
        while self._queue and count < self._batch:
            item = self._queue[0]
            size = 1 if isinstance(item, Event) else item.count
            if taken and count + size > self._batch:
                break
            taken.append(self._queue.popleft())
            count += size
        self._size -= count
        return taken

    def _get_deadline(self) -> float | None:
        """None while the process runs; from ``close()`` on, the end of ``SHUTDOWN_TIMEOUT``."""
        return self._deadline

    def _wait(self, seconds: float) -> None:
        """Back off between retries; when shutdown begins, stop waiting and try again at once.

        From then on the shutdown deadline rules: the delivery keeps retrying (a 503 at exit
        must not lose the queue) until a backoff would take it past the deadline. A long wait
        is cut in slices, to report a full queue meanwhile.
        """
        until = time.monotonic() + seconds
        while (remaining := until - time.monotonic()) > 0:
            with self._cond:
                if self._stopping:
                    self._cond.wait_for(lambda: False, timeout=remaining)  # deaf to wake-ups
                    return
                if self._cond.wait_for(
                    lambda: self._stopping, timeout=min(remaining, REPORT_INTERVAL)
                ):
                    return
            self._report_overflow()

    # -- flush, exit, stats ------------------------------------------------------------------

    def flush(self, timeout: float | None = None) -> bool:
        if self._pid != os.getpid():
            lifecycle.after_fork_in_child()
        timeout = self.settings.FLUSH_TIMEOUT if timeout is None else timeout
        deadline = time.monotonic() + timeout
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
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        break
                    if self._stopping and not self._sender_alive():
                        break  # closed: nothing will move any more
                    self._cond.wait(min(remaining, LIVENESS_INTERVAL))
                    if not self._sender_alive():
                        self._start()  # a sender that died must not leave us waiting forever
            finally:
                self._flushing -= 1
            return self._finished >= target

    def close(self, timeout: float | None = None, *, reason: str | None = None) -> None:
        """Deliver what is queued within ``timeout`` (default ``SHUTDOWN_TIMEOUT``), then stop.

        What is still undelivered then (queued, in the sender's hands, or given up at the
        deadline) is lost: counted in ``stats()``, logged once, and sent with
        ``events_dropped``, the same events in all three, under ``reason`` (by default
        ``shutdown_timeout``; ``closed`` when the settings changed).
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
            self._room.notify_all()
        if thread is not None:
            thread.join(max(self._deadline - time.monotonic(), 0) + 0.5)
        with self._cond:
            lost_items = [*self._stranded, *self._in_flight, *self._queue]
            self._stranded, self._in_flight, self._queue, self._size = [], [], deque(), 0
            self._finished = self._accepted  # all delivered or given up: no flush may wait
        lost, _counted = self._events_of(lost_items)
        self._report_overflow()
        if reason is None:
            reason = SHUTDOWN_TIMEOUT
            detail = f"not delivered within SHUTDOWN_TIMEOUT ({timeout:g} s) as the process stops"
        else:
            detail = (
                f"the settings changed: not delivered within {timeout:g} s, the backend replaced"
            )
        self.reporter.dropped(reason, lost, detail)
        self.reporter.summary(self._max_queue)
        if self._delivery is not None:
            self._delivery.close()

    def queued(self) -> int:
        return self._size

    def stats(self) -> dict[str, Any]:
        """The counters, with the full queue's drops that the sender has not reported yet."""
        with self._lock:
            report = super().stats()
            if self._overflow:
                report["dropped"] += self._overflow
                by_reason = report["dropped_by_reason"]
                by_reason[QUEUE_FULL] = by_reason.get(QUEUE_FULL, 0) + self._overflow
        return report
