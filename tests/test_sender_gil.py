"""The sender thread never holds the interpreter for long (issue 13).

While the sender holds the GIL, every request thread of the process waits for it. The sender's
work on a batch is made of short pieces (one event encoded at a time, then the body joined and
sent), and between two pieces the interpreter can hand the GIL to a request thread. What is
measured is the longest piece: the sender's own CPU time (``time.thread_time``, which a busy
machine does not inflate) between two consecutive function calls or returns in the sender
thread, seen by a profile function. The GIL can only be kept through such a stretch by one C
call (a json call over a whole batch, say), so this bounds the longest stretch from above.
Left out: garbage collections (the collector runs in whichever thread allocates, and its cost
is the size of the process's heap, not the sender's), and the C calls that release the GIL
while they wait or copy (socket I/O, polling, locks): their CPU time is the kernel's, and on a
busy machine it includes network work done for other processes. A ticker thread's lateness
would measure the same on a quiet machine, but on a loaded one it measures the operating
system's scheduler. A wall-time figure of the sender belongs to ``make bench``, not here.

Short pieces are not enough: the interpreter hands the GIL to a waiting thread only when the
running one lets go (a system call, or the switch interval, 5 ms, running out). So the test
also counts the profile events between two times the sender lets go: a count, the same on a
loaded machine (``delivery.let_requests_run``).
"""

from __future__ import annotations

import contextlib
import gc
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from types import FrameType
from typing import Any

import pytest

import django_kameleoon
from django_kameleoon.backends import get_backend
from django_kameleoon.backends.client import json_array
from django_kameleoon.backends.threaded import ThreadedBackend
from django_kameleoon.events import Event, make_event
from django_kameleoon.testing import DataApiServer
from tests.support import Configure

#: The longest stretch allowed: well under the 5 ms switch interval a request thread may wait.
LIMIT = 0.001

#: C calls in the sender's path that release the GIL for their system calls (CPython's
#: socketmodule.c, selectmodule.c, _threadmodule.c). ``bytes.join`` is not among them: it
#: only releases the GIL over 1 MB, and a full batch of page views is a third of that.
RELEASE_THE_GIL = frozenset(
    {
        "socket.connect",
        "socket.recv_into",
        "socket.sendall",
        "socket.close",
        "poll.poll",
        "select",
        "lock.acquire",
        "sleep",
        "sched_yield",
    }
)

#: The most profile events (calls and returns, Python and C) allowed between two moments the
#: sender lets go of the GIL. A thread that wants the GIL waits up to the 5 ms switch interval
#: for the sender to let go, so short single calls are not enough: the sender must also let go
#: often. Measured: the most between two yields of the sender (50 events encoded) is about
#: 5,700, a few tenths of a millisecond unprofiled; a full batch without yielding, 48,000.
CALLS_LIMIT = 10_000


#: Full batches measured, one after the other.
BATCHES = 5

#: Stretches at least this long are kept by where they end, to compare batches place by place.
NOTED = LIMIT / 10


@dataclass
class Watch:
    """The longest stretch of CPU time between two profile events in one thread, and the
    longest at each place (the profile event that ends it) where one reached ``NOTED``."""

    thread: str
    watching: bool = False
    longest: float = 0.0
    places: dict[str, float] = field(default_factory=dict)
    last: float = 0.0
    collecting_since: float | None = None
    collected: float = 0.0  # CPU time spent collecting garbage since ``last``
    calls: int = 0  # profile events since the thread last took the GIL back
    most_calls: int = 0  # the most profile events between two times it let go of the GIL

    def event(self, frame: FrameType, event: str, arg: Any) -> None:
        if threading.current_thread().name != self.thread:
            return
        now = time.thread_time()
        gil_free = event.startswith("c_") and getattr(arg, "__qualname__", "") in RELEASE_THE_GIL
        if gil_free and event == "c_call" and self.watching:
            self.most_calls = max(self.most_calls, self.calls)
        self.calls = 0 if gil_free else self.calls + 1
        gil_free = gil_free and event == "c_return"
        stretch = now - self.last - self.collected
        if self.watching and not gil_free and stretch >= NOTED:
            self.longest = max(self.longest, stretch)
            name = getattr(arg, "__qualname__", "") if event.startswith("c_") else ""
            code = frame.f_code
            place = f"{event} {name or code.co_name} ({code.co_filename}:{frame.f_lineno})"
            self.places[place] = max(self.places.get(place, 0.0), stretch)
        self.collected = 0.0
        self.last = time.thread_time()

    def gc(self, phase: str, info: dict[str, Any]) -> None:
        if threading.current_thread().name != self.thread:
            return
        if phase == "start":
            self.collecting_since = time.thread_time()
        elif self.collecting_since is not None:
            self.collected += time.thread_time() - self.collecting_since
            self.collecting_since = None

    @contextlib.contextmanager
    def watch(self) -> Iterator[None]:
        self.longest, self.places, self.most_calls = 0.0, {}, 0
        self.watching, self.last = True, time.thread_time()
        try:
            yield
        finally:
            self.watching = False


@contextlib.contextmanager
def profiled(thread: str) -> Iterator[Watch]:
    """Profile threads named ``thread`` started in the block (threading.setprofile)."""
    watch = Watch(thread)
    threading.setprofile(watch.event)
    gc.callbacks.append(watch.gc)
    try:
        yield watch
    finally:
        threading.setprofile(None)  # type: ignore[arg-type]
        gc.callbacks.remove(watch.gc)


def page_views(count: int, seed: int) -> list[Event]:
    """``count`` events as the middleware makes them: a STATICDATA and a PAGE per page view."""
    events = []
    for n in range(count // 2):
        code = f"gil{seed}v{n:05d}"
        static = {
            "browser": "Chrome",
            "browserVersion": 124.0,
            "os": "Windows",
            "deviceType": "DESKTOP",
            "localeLanguageTag": "en-US",
            "visitNumber": 3,
        }
        page = {
            "href": f"https://shop.example.com/products/{n}/?utm_source=newsletter",
            "title": "Product page",
            "referrerHref": "https://www.google.com/",
        }
        events += [make_event(code, "STATICDATA", static), make_event(code, "PAGE", page)]
    return events


def test_the_sender_holds_the_gil_under_1_ms_at_a_time_for_a_full_batch(
    kameleoon: Configure, data_api: DataApiServer
) -> None:
    kameleoon(MAX_BATCH_EVENTS=1000, FLUSH_INTERVAL=60.0)
    backend = get_backend()
    assert isinstance(backend, ThreadedBackend)
    batches: list[dict[str, float]] = []
    most_calls = []
    with profiled("kameleoon-sender") as watch:
        django_kameleoon.track_conversion("warmup", 1)  # starts the sender, opens the connection
        assert django_kameleoon.flush(10)
        for seed in range(BATCHES):
            events = page_views(1000, seed)
            with watch.watch():
                backend.send(events)
                assert django_kameleoon.flush(30)
            batches.append(watch.places)
            most_calls.append(watch.most_calls)
    assert len(data_api.events) == 1 + BATCHES * 1000
    held = held_in_every_batch(batches)
    assert not held, held
    assert max(most_calls) <= CALLS_LIMIT, most_calls  # lets go often: a count, not a time


def held_in_every_batch(batches: list[dict[str, float]]) -> dict[str, str]:
    """The places where every batch held the GIL for ``LIMIT`` or longer.

    A call that holds the GIL for long does so in every batch, at the same place. Another
    process's burst on a loaded machine lands where it happens to, in one batch or two: the
    kernel's work for it (an interrupt, the network) is counted in the thread it interrupts.
    """
    places = set().union(*batches)
    shortest = {place: min(batch.get(place, 0.0) for batch in batches) for place in places}
    return {place: f"{s * 1e3:.2f} ms" for place, s in shortest.items() if s >= LIMIT}


@pytest.mark.parametrize("count", [0, 1, 2, 3, 1000])
def test_a_json_body_is_the_events_in_one_array(count: int) -> None:
    encoded = [event.to_json().encode() for event in page_views(count, 7)]
    body = json_array(encoded)
    assert body == b"[" + b",".join(encoded) + b"]"
    assert json.loads(body) == [json.loads(e) for e in encoded]


def test_the_watch_sees_a_long_stretch_in_every_batch() -> None:
    """The measurement can fail: one json call over a big batch holds the GIL for long."""
    payload = [event.as_dict() for event in page_views(10_000, 9)]
    batches = []
    with profiled("encoder") as watch:
        for _ in range(3):
            with watch.watch():
                encoder = threading.Thread(target=json.dumps, args=(payload,), name="encoder")
                encoder.start()
                encoder.join()
            batches.append(watch.places)
    assert watch.longest > LIMIT
    assert held_in_every_batch(batches)
