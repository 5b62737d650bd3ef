"""Signals: conversions as they are recorded, delivery outcomes as they happen.

``conversion`` tells a site's own receivers (to mirror goals into its own analytics, say) about
each conversion ``track_conversion()`` or ``{% kameleoon_conversion %}`` has just queued; it
queues nothing itself, so no receiver, and no missing app config, can lose one. The delivery
signals let a site count or alert on what reached Kameleoon and what did not; they are sent
from the sender thread.
"""

from __future__ import annotations

from django.dispatch import Signal

__all__ = ["conversion", "events_delivered", "events_dropped"]

#: Sent by ``track_conversion()`` once the event is queued, with ``sender=Event``; kwargs
#: ``visitor_code``, ``goal_id``, ``revenue``, ``negative``, ``metadata`` (the checked values),
#: ``request`` (``None`` when tracked by visitor code) and ``event``. Sent robustly: a receiver
#: that raises is logged. It is sent on every conversion, so its receivers are cached per
#: sender, as for Django's model signals.
conversion = Signal(use_caching=True)

#: Sent after the Data API accepted a batch; kwarg ``events`` (a list of ``Event``).
events_delivered = Signal()

#: Sent when events are given up, from the sender thread (never the request path), once per
#: batch, or once per report of a full queue; kwargs ``reason`` (a stable code from
#: ``django_kameleoon.backends.reporting.REASONS``: ``"queue_full"``, ``"rejected"``, ...),
#: ``count`` (how many) and ``events`` (the list of those ``Event``; empty for ``queue_full``:
#: the request path only counts them, so that memory stays bounded).
events_dropped = Signal()
