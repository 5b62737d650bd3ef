"""Report a Django site's visitors to Kameleoon through its Data API, without JavaScript.

The public functions are importable from here; they load Django lazily, so importing the
package (for its version, say) needs no configured settings.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

#: Events kept by ``LocmemBackend``, like ``django.core.mail.outbox``.
outbox: list[Any] = []

__all__ = [
    "atrack",
    "atrack_conversion",
    "flush",
    "get_visitor_code",
    "outbox",
    "stats",
    "track",
    "track_conversion",
]

if TYPE_CHECKING:
    from django_kameleoon.api import (
        atrack,
        atrack_conversion,
        flush,
        get_visitor_code,
        stats,
        track,
        track_conversion,
    )


def __getattr__(name: str) -> Any:
    """The functions of ``django_kameleoon.api``, imported on first use (``outbox`` is here)."""
    if name in __all__:
        from django_kameleoon import api

        value = globals()[name] = getattr(api, name)
        return value
    raise AttributeError(f"module 'django_kameleoon' has no attribute {name!r}")
