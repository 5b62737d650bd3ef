"""``Recording``: what a ``DataApiServer`` received, and the faults it has still to apply.

The handler threads record into it and take faults from it; ``DataApiServer`` scripts faults
into it and reads copies from it for tests. It knows neither of them: both depend on it, so
the handler needs nothing of the server module, which imports the handler to serve.
"""

from __future__ import annotations

import copy
import threading
from collections import deque
from typing import Literal, NamedTuple

from django_kameleoon.testing.body import Verdict
from django_kameleoon.testing.received import Fault, ReceivedRequest
from django_kameleoon.testing.rules import WireEvent
from django_kameleoon.testing.validation import short_repr


class Recorded(NamedTuple):
    """What one request added: for the server's callbacks, in the order of its body."""

    accepted: list[WireEvent]
    duplicates: list[WireEvent]
    violations: list[str]


class Recording:
    """Thread-safe: every change and every read happens under one condition, which waits use.

    Reads return copies, so a test can keep or change what it read without a lock.
    """

    def __init__(self) -> None:
        self._condition = threading.Condition()
        self._events: list[WireEvent] = []
        self._by_nonce: dict[str, WireEvent] = {}
        self._duplicates: list[WireEvent] = []
        self._requests: list[ReceivedRequest] = []
        self._violations: list[str] = []
        self._faults: deque[Fault] = deque()

    # -- scripted faults ------------------------------------------------------------------

    def add_faults(self, fault: Fault, times: int) -> None:
        """Apply ``fault`` to the next ``times`` POSTs, after those already scripted."""
        with self._condition:
            self._faults.extend([fault] * times)

    def next_fault(self) -> Fault | None:
        """Take the fault for the POST being handled, if one is scripted."""
        with self._condition:
            return self._faults.popleft() if self._faults else None

    # -- recording (called from the handler threads) ----------------------------------------

    def record(self, request: ReceivedRequest, verdict: Verdict | None) -> Recorded:
        """Store a request and, when it was accepted, its events; wake whoever waits.

        A retried event (same nonce, same content) lands in ``duplicates`` without repeating
        its violations; a nonce reused for a different event is itself a violation. Returns
        the events newly accepted, the duplicates and the violations found, for the server's
        callbacks.
        """
        violations = list(verdict.problems) if verdict else []
        accepted: list[WireEvent] = []
        duplicates: list[WireEvent] = []
        parsed = verdict.body if verdict and verdict.status == 202 else None
        with self._condition:
            for event, problems in parsed.events if parsed else []:
                nonce = event.get("nonce")
                original = self._by_nonce.get(nonce) if isinstance(nonce, str) else None
                if original is not None:
                    duplicates.append(event)
                    if original != event:
                        violations.append(
                            f"nonce {nonce} was reused for a different event: "
                            f"{short_repr(event, 200)}"
                        )
                    continue
                if isinstance(nonce, str):
                    self._by_nonce[nonce] = event
                self._events.append(event)
                accepted.append(event)
                violations += problems
            self._duplicates += duplicates
            self._violations += violations
            self._requests.append(request)
            self._condition.notify_all()
        return Recorded(accepted, duplicates, violations)

    # -- reading ------------------------------------------------------------------------

    @property
    def events(self) -> list[WireEvent]:
        with self._condition:
            return copy.deepcopy(self._events)

    @property
    def duplicates(self) -> list[WireEvent]:
        with self._condition:
            return copy.deepcopy(self._duplicates)

    @property
    def requests(self) -> list[ReceivedRequest]:
        with self._condition:
            return list(self._requests)

    @property
    def violations(self) -> list[str]:
        with self._condition:
            return list(self._violations)

    def wait(self, count: int, what: Literal["events", "requests"], timeout: float) -> bool:
        """Block until at least ``count`` events were accepted (or requests arrived).

        False at the deadline. Waiting is on the condition ``record`` notifies, never a sleep.
        """
        held = self._events if what == "events" else self._requests
        with self._condition:
            return self._condition.wait_for(lambda: len(held) >= count, timeout)

    def summary(self) -> str:
        """What arrived so far, in a line, for the message of a wait that timed out."""
        with self._condition:
            return (
                f"{len(self._events)} events ({len(self._duplicates)} duplicates) in "
                f"{len(self._requests)} requests; violations: {self._violations or 'none'}"
            )

    def reset(self) -> None:
        """Forget everything received and every pending fault."""
        with self._condition:
            self._events.clear()
            self._by_nonce.clear()
            self._duplicates.clear()
            self._requests.clear()
            self._violations.clear()
            self._faults.clear()
