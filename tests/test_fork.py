"""The threaded backend after os.fork(): the child starts its own sender and forgets the
parent's queue, which the parent still delivers; nothing arrives twice.
"""

from __future__ import annotations

import os

import django_kameleoon
from django_kameleoon.testing import DataApiServer
from tests.conftest import Configure


def test_a_forked_child_sends_its_own_events_and_not_its_parents(
    kameleoon: Configure, data_api: DataApiServer
) -> None:
    kameleoon(FLUSH_INTERVAL=60.0)
    django_kameleoon.track_conversion("parent", 1)  # starts the sender; stays queued
    pid = os.fork()
    if pid == 0:  # the child: exits without atexit, like a prefork worker
        code = 1
        try:
            django_kameleoon.track_conversion("child", 2)
            code = 0 if django_kameleoon.flush(10) else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    # Made after the fork, like the child's: the two must not share a nonce.
    django_kameleoon.track_conversion("parent", 3)
    assert django_kameleoon.flush(10)
    assert sorted((e["visitorCode"], e["goalId"]) for e in data_api.events) == [
        ("child", 2),
        ("parent", 1),
        ("parent", 3),
    ]
    assert data_api.duplicates == []
