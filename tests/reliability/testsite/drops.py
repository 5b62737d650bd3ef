"""One stderr line per ``events_dropped`` signal, so a script counts what the library reported.

A process's own counters (``stats()``) die with it; these lines outlive it in the server's log,
which is where ``benchmarks/scenarios.py`` compares the drops the library reported with what
the Data API actually missed.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Sequence
from typing import Any

from django_kameleoon.signals import events_dropped

#: A line this module prints: the pid, the number of events given up, the reason.
LINE = re.compile(r"^(\d+) kameleoon-dropped (\d+) (.*)$", re.M)


def _say(
    sender: Any, events: Sequence[Any], reason: str, count: int | None = None, **kwargs: Any
) -> None:
    # ``count``: a full queue is signalled with its count and no events (none is kept).
    number = len(events) if count is None else count
    print(f"{os.getpid()} kameleoon-dropped {number} {reason}", file=sys.stderr, flush=True)


def connect() -> None:
    """Report every drop of this process on stderr (idempotent)."""
    events_dropped.connect(_say, dispatch_uid="testsite-drops")


def reported(output: str) -> dict[str, int]:
    """The events reported dropped in a log, by reason."""
    totals: dict[str, int] = {}
    for _pid, count, reason in LINE.findall(output):
        totals[reason] = totals.get(reason, 0) + int(count)
    return totals
