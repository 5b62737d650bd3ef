"""The old home of :mod:`django_kameleoon.lifecycle`, kept so that ``asgi.py`` files written
for earlier versions (``from django_kameleoon.workers import deliver_on_shutdown``) still work.
"""

from __future__ import annotations

from django_kameleoon.lifecycle import deliver_on_shutdown, deliver_pending

__all__ = ["deliver_on_shutdown", "deliver_pending"]
