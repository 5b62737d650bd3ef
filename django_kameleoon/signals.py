"""Signals: conversions going in, delivery outcomes coming out.

``conversion`` is how a conversion travels from ``track_conversion()`` (or a template tag) to the
queue: the app's own receiver turns it into an event, and a site can add receivers of its own,
for instance to mirror goals into its own analytics. The delivery signals let a site count or
alert on what reached Kameleoon and what did not; they are sent from the sender thread.
"""

from __future__ import annotations

from django.dispatch import Signal

__all__ = ["conversion", "events_delivered", "events_dropped"]

#: Sent by ``track_conversion()`` with ``sender=Event``; kwargs ``visitor_code``, ``goal_id``,
#: ``revenue``, ``negative``, ``metadata``, ``request`` (``None`` when tracked by visitor code)
#: and ``event`` (the checked event). It is sent on every conversion, so its receivers are
#: cached per sender, as for Django's model signals: a site that sends it itself passes a class
#: (or another object that can be weakly referenced) as ``sender``.
conversion = Signal(use_caching=True)

#: Sent after the Data API accepted a batch; kwarg ``events`` (a list of ``Event``).
events_delivered = Signal()

#: Sent when events are given up; kwargs ``events`` and ``reason`` (a short text such as
#: ``"queue full"``, ``"HTTP 400"`` or ``"retries exhausted"``).
events_dropped = Signal()
